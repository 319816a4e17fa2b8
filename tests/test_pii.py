"""PII plugin: detectors with checksums, spans, per-tenant settings."""

from __future__ import annotations

import pytest
from groundwire import Action, ConfigError, Draft, GroundingRequest, UserContext, config_from_dict
from groundwire.pipeline import apply_redactions
from groundwire.plugins import pii


def test_luhn() -> None:
    assert pii.luhn_valid("4111 1111 1111 1111")
    assert pii.luhn_valid("5500-0000-0000-0004")
    assert not pii.luhn_valid("4111 1111 1111 1112")
    assert not pii.luhn_valid("1234")


def test_iban_mod97() -> None:
    assert pii.iban_valid("GB82 WEST 1234 5698 7654 32")
    assert pii.iban_valid("DE89370400440532013000")
    assert not pii.iban_valid("GB82 WEST 1234 5698 7654 33")
    assert not pii.iban_valid("XX00")


@pytest.mark.parametrize(
    ("text", "value", "label"),
    [
        ("Write to jane.doe@example.co.uk today.", "jane.doe@example.co.uk", "email"),
        ("Card 4111 1111 1111 1111 was charged.", "4111 1111 1111 1111", "credit_card"),
        ("Pay to GB82 WEST 1234 5698 7654 32 please.", "GB82 WEST 1234 5698 7654 32", "iban"),
        ("Her SSN is 123-45-6789.", "123-45-6789", "us_ssn"),
        ("NINO: QQ 12 34 56 C is invalid but AB 12 34 56 C is fine.", "AB 12 34 56 C", "uk_nino"),
        ("Call +44 20 7946 0958 now.", "+44 20 7946 0958", "phone"),
        ("Call (415) 555-2671.", "(415) 555-2671", "phone"),  # 555-0100..0199 are fictional, not valid
        ("Ring +49 30 1234567 today.", "+49 30 1234567", "phone"),  # issue 15: was missed
        ("Call 020 7946 0958 in London.", "020 7946 0958", "phone"),
        ("She lives at 221 Baker Street in London.", "221 Baker Street", "street_address"),
    ],
)
def test_detects(text: str, value: str, label: str) -> None:
    spans = pii.find_pii(text)
    found = [(text[s:e], lab) for s, e, lab in spans]
    assert (value, label) in found


def test_no_false_positives_on_invalid_numbers() -> None:
    text = "Card 4111 1111 1111 1112, SSN 000-12-3456, IBAN GB82 WEST 1234 5698 7654 33, year 2026."
    labels = {lab for _, _, lab in pii.find_pii(text)}
    assert not labels & {"credit_card", "us_ssn", "iban"}
    assert pii.find_pii("In 2026 the budget grew by 3.5 percent over 12 months.") == []


@pytest.mark.parametrize("text", [
    "Reference 4000 5000 6000 is the order number.",  # issue 15: was redacted as a phone number
    "Invoice 2024-0001 was paid on 2024-03-15 at 10:30.",
    "Version 10.2.3.4 shipped; ids 123 456 789 and 1234 5678.",
    "The years 2019 2020 2021 were good.",
])
def test_numbers_that_are_not_phone_numbers(text: str) -> None:
    assert [lab for *_, lab in pii.find_pii(text)] == []


def test_national_formats_follow_the_configured_regions() -> None:
    text = "Ruf an: 030 1234567."
    assert pii.find_pii(text) == []  # a German national number is not a US or UK one
    assert [text[s:e] for s, e, _ in pii.find_pii(text, phone_regions=["DE"])] == ["030 1234567"]
    draft = Draft("r", text)
    de = config_from_dict({"plugins": {"settings": {"pii": {"phone_regions": ["de"]}}}})
    v = pii.screen_output(request=_request("acme"), draft=draft, sources=[], config=de)
    assert v is not None and v.reason == "personal data: 1 phone"
    bad = config_from_dict({"plugins": {"settings": {"pii": {"phone_regions": ["XX"]}}}})
    with pytest.raises(ConfigError, match="unknown regions"):
        pii.screen_output(request=_request("acme"), draft=draft, sources=[], config=bad)


def test_card_not_double_reported_as_phone() -> None:
    spans = pii.find_pii("Card 4111 1111 1111 1111.")
    assert [lab for *_, lab in spans] == ["credit_card"]


def test_redaction_masks_spans() -> None:
    text = "Mail jane@example.com or call +1 415 555 0100 about card 4111111111111111."
    out = apply_redactions(text, pii.find_pii(text))
    assert "jane@example.com" not in out and "4111111111111111" not in out and "555 0100" not in out
    assert "[REDACTED:email]" in out and "[REDACTED:credit_card]" in out and "[REDACTED:phone]" in out


def _request(tenant: str) -> GroundingRequest:
    return GroundingRequest(user=UserContext.of("u", tenant), prompt="q")


def test_hook_per_tenant_settings() -> None:
    config = config_from_dict(
        {
            "plugins": {
                "settings": {
                    "pii": {
                        "entities": ["email", "phone"],
                        "tenants": {
                            "beta": {"enabled": False},
                            "gamma": {"action": "flag", "entities": ["email"]},
                        },
                    }
                }
            }
        }
    )
    draft = Draft(request_id="r", text="Mail a@b.org or call +1 415 555 0100; SSN 123-45-6789.")
    v = pii.screen_output(request=_request("acme"), draft=draft, sources=[], config=config)
    assert v is not None and v.action is Action.REDACT
    assert {lab for *_, lab in v.spans} == {"email", "phone"}
    assert "a@b.org" not in v.reason
    assert pii.screen_output(request=_request("beta"), draft=draft, sources=[], config=config) is None
    g = pii.screen_output(request=_request("gamma"), draft=draft, sources=[], config=config)
    assert g is not None and g.action is Action.FLAG and {lab for *_, lab in g.spans} == {"email"}
