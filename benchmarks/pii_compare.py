"""The built-in ``pii`` plugin against the optional ``presidio`` plugin on a small hand-labelled set.

    python -m benchmarks.pii_compare            # needs: pip install 'groundwire[presidio]'

Each case is a sentence and the personal data in it (exact substrings; none in a negative). Tricky negatives
are order / invoice / tracking numbers, dates, versions and a Luhn-invalid 16-digit number. A predicted span
is a true positive when it overlaps a labelled value (types are not compared: both plugins label
differently); recall counts labelled values overlapped by some prediction. Both plugins run with their
default entity sets, so a type only one of them covers (IP address; UK NINO, street address) counts.
``clear`` marks the cases every PII detector should get right (``tests/test_presidio_pii.py`` asserts the
presidio plugin finds them). A few dozen sentences are a smoke check, not a benchmark: read the figures so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["CASES", "Case", "Score", "evaluate", "overlaps"]


@dataclass(frozen=True)
class Case:
    text: str
    pii: tuple[str, ...] = ()  # the personal data in text, each an exact substring
    kind: str = ""  # the type of the labelled values, for the per-type table
    clear: bool = False


CASES: tuple[Case, ...] = (
    # --- positives
    Case("Please email jane.doe@example.co.uk with the signed form.", ("jane.doe@example.co.uk",), "email", True),
    Case("Questions go to payroll.team@acme-corp.com or the HR desk.", ("payroll.team@acme-corp.com",), "email", True),
    Case("The card on file is 4111 1111 1111 1111.", ("4111 1111 1111 1111",), "credit_card", True),
    Case("Refund the charge to card number 5500-0000-0000-0004.", ("5500-0000-0000-0004",), "credit_card", True),
    Case("Charge 378282246310005 for the conference fee.", ("378282246310005",), "credit_card"),
    Case("Transfer the deposit to IBAN GB82 WEST 1234 5698 7654 32.", ("GB82 WEST 1234 5698 7654 32",), "iban", True),
    Case("Our German account is DE89370400440532013000.", ("DE89370400440532013000",), "iban", True),
    Case("Her social security number is 536-22-8841.", ("536-22-8841",), "us_ssn", True),
    Case("SSN 412-67-3390 was entered twice in the form.", ("412-67-3390",), "us_ssn", True),
    Case("Call me on +44 20 7946 0958 after lunch.", ("+44 20 7946 0958",), "phone", True),
    Case("My mobile number is (415) 555-0132.", ("(415) 555-0132",), "phone", True),
    Case("Reach the office at 020 7946 0123 during business hours.", ("020 7946 0123",), "phone"),
    Case("Fax the claim to +1-212-555-0187 before Friday.", ("+1-212-555-0187",), "phone"),
    Case(
        "Contact Dana at dana.smith@example.org or +49 30 901820.",
        ("dana.smith@example.org", "+49 30 901820"),
        "email+phone",
    ),
    Case("The laptop at 10.20.30.40 sent the request.", ("10.20.30.40",), "ip_address"),
    Case("His national insurance number is AB 12 34 56 C.", ("AB 12 34 56 C",), "uk_nino"),
    Case("She moved to 221 Baker Street last spring.", ("221 Baker Street",), "street_address"),
    # --- negatives
    Case("Order 4111111111111112 shipped on 2026-03-12."),
    Case("Invoice INV-2026-004512 is due on 15/04/2026."),
    Case("The meeting moved from 10:30 to 14:45 on 2026-05-07."),
    Case("Tracking number 1Z999AA10123456784 was issued by the courier."),
    Case("Version 3.12.4 of the tool fixed build 2026.04.17."),
    Case("The budget grew by 3.5 percent to 1,250,000 euros in 2026."),
    Case("ISBN 978-0-306-40615-7 is cited in the handbook."),
    Case("Room 4-112, extension 4471, building B."),
    Case("Policy reference 2026-0412-7781 applies to all staff."),
    Case("Purchase order 450012345678 was approved on Monday."),
    Case("Employee ID 00012345 joined the team in March."),
    Case("Ticket #123456789 was closed yesterday."),
    Case("The quarterly report covers 2025-10-01 to 2025-12-31."),
    Case("Item SKU 5012345678900 is out of stock."),
    Case("See section 4.2.1 and table 12 of the leave policy, pages 10-14."),
)


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def gold_spans(case: Case) -> list[tuple[int, int]]:
    spans = []
    for value in case.pii:
        start = case.text.index(value)
        spans.append((start, start + len(value)))
    return spans


@dataclass
class Score:
    predicted: int = 0
    true_positive: int = 0  # predictions overlapping a labelled value
    gold: int = 0
    found: int = 0  # labelled values overlapped by a prediction
    false_alarm_sentences: int = 0  # negatives with any prediction

    @property
    def precision(self) -> float:
        return self.true_positive / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 1.0


def evaluate(
    detect: Callable[[str], Sequence[tuple[int, int]]], cases: Sequence[Case] = CASES
) -> tuple[Score, dict[str, tuple[int, int]]]:
    """Overall score and, per labelled type, (found, labelled)."""
    total = Score()
    per_kind: dict[str, tuple[int, int]] = {}
    for case in cases:
        gold = gold_spans(case)
        pred = list(detect(case.text))
        total.predicted += len(pred)
        total.true_positive += sum(any(overlaps(p, g) for g in gold) for p in pred)
        found = sum(any(overlaps(p, g) for p in pred) for g in gold)
        total.gold += len(gold)
        total.found += found
        if not gold and pred:
            total.false_alarm_sentences += 1
        if case.kind:
            f, n = per_kind.get(case.kind, (0, 0))
            per_kind[case.kind] = (f + found, n + len(gold))
    return total, per_kind


def main() -> None:
    from groundwire import config_from_dict
    from groundwire.plugins import pii, presidio_pii

    config = config_from_dict({"plugins": {"settings": {"presidio": {"enabled": True}}}})
    detectors: dict[str, Callable[[str], Sequence[tuple[int, int]]]] = {
        "pii (built-in)": lambda t: [(s, e) for s, e, _ in pii.find_pii(t)],
        "presidio": lambda t: [(s, e) for s, e, _, _ in presidio_pii.find_pii(t, config)],
    }
    negatives = sum(not c.pii for c in CASES)
    print(f"{len(CASES)} sentences, {sum(len(c.pii) for c in CASES)} labelled values, {negatives} negatives")
    print(f"{'plugin':<16} {'precision':>9} {'recall':>7} {'TP/pred':>8} {'found':>7} {'false-alarm negatives':>22}")
    tables = {}
    for name, detect in detectors.items():
        s, per_kind = evaluate(detect)
        tables[name] = per_kind
        print(
            f"{name:<16} {s.precision:>9.2f} {s.recall:>7.2f} {s.true_positive:>4}/{s.predicted:<3} "
            f"{s.found:>3}/{s.gold:<3} {s.false_alarm_sentences:>14}/{negatives}"
        )
    print("\nfound / labelled per type")
    kinds = sorted({k for t in tables.values() for k in t})
    print(f"{'type':<16}" + "".join(f"{n:>16}" for n in tables))
    for k in kinds:
        print(f"{k:<16}" + "".join(f"{f'{t[k][0]}/{t[k][1]}':>16}" for t in tables.values()))


if __name__ == "__main__":
    main()
