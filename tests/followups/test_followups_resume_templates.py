"""A resume command that is followed resumes at the branch's tip: the defaults, and every
resume template the documentation shows, never pass the blocked sha as the sha to resume at."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from mergegate.followups import GuidanceTemplates
from mergegate.statemachine import Approve, CandidateKey, Resume

DOCS = Path(__file__).resolve().parents[2] / "docs"
KEY = CandidateKey("login-form", "feature/login-form", "3f1c2ab9d0e4c5b6a7980112233445566778899a")
FOLLOW_UP = "login-form-integration-blocked-3f1c2ab"


def test_the_default_resume_names_no_sha_and_approve_names_the_blocked_one() -> None:
    """Default resume is `mergegate resume SLUG` (it takes the tip); approve names the sha."""
    templates = GuidanceTemplates()
    resume = templates.render(Resume(KEY.slug, KEY.branch, KEY.sha), KEY, FOLLOW_UP)
    assert resume == "mergegate resume login-form"
    approve = templates.render(Approve(KEY.slug, KEY.sha), KEY, FOLLOW_UP)
    assert KEY.sha in approve


def _documented_resume_templates() -> list[tuple[str, str]]:
    """Every resume template in the docs' Python and TOML examples, with its page."""
    found: list[tuple[str, str]] = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"resume=\"([^\"]*)\"", text):
            found.append((page.name, match.group(1)))
        for block in re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL):
            guidance = tomllib.loads(block).get("guidance", {})
            if "resume" in guidance:
                found.append((page.name, guidance["resume"]))
    return found


def test_no_documented_resume_template_resumes_at_the_blocked_sha() -> None:
    """Following a documented resume template never names the blocked sha as the new one."""
    found = _documented_resume_templates()
    assert {page for page, _ in found} >= {"python-api.md", "guidance.md", "configuration.md"}
    for page, template in found:
        GuidanceTemplates(resume=template)  # a valid template
        rendered = GuidanceTemplates(resume=template).render(
            Resume(KEY.slug, KEY.branch, KEY.sha), KEY, FOLLOW_UP
        )
        assert KEY.sha not in rendered, (page, template)
