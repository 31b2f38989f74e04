"""The store contract, run against every backend the ``store`` fixture yields."""

from mergegate.persistence.contract import StoreContract


class TestStoreContract(StoreContract):
    """Every store passes the same contract."""
