"""An app embedding Groundwire: index the example corpus, then answer as two users.

Run: .venv/bin/python examples/app.py
"""

from __future__ import annotations

from pathlib import Path

from groundwire import FeatureDisabled, Grounder, UserContext


def main() -> None:
    grounder = Grounder.from_config(Path(__file__).with_name("groundwire.toml"))
    for report in grounder.sync():
        print(f"synced {report.connector}: +{report.added} ~{report.updated} -{report.deleted}")

    question = "How many days of annual leave do I get?"
    for user in (
        UserContext.of("sam@example.com", "acme"),
        UserContext.of("hana@example.com", "acme", groups=["hr"]),
    ):
        try:
            draft = grounder.ground(question, user)
        except FeatureDisabled as exc:
            print(f"{user.user_id}: {exc}")
            continue
        print(f"\n--- {user.user_id} ({draft.status}) ---\n{draft.text}")
        for c in draft.citations:
            print(f"  [{c.n}] {c.title} ({c.location or 'document'}) {c.uri}")
        print(draft.notice)


if __name__ == "__main__":
    main()
