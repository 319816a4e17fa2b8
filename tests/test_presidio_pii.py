"""Presidio plugin against the real presidio-analyzer (blank spaCy pipeline, no model download, no network):
detection and spans, redaction through a Grounder, per-tenant settings, configured-only, the missing extra,
reasons without values, one engine per configuration, and an NER pipeline given as a path."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from groundwire import (
    Action,
    ConfigError,
    Draft,
    DraftStatus,
    GroundingRequest,
    MissingExtra,
    UserContext,
    config_from_dict,
)
from groundwire.pipeline import apply_redactions
from groundwire.plugins import presidio_pii

from benchmarks.pii_compare import CASES, gold_spans, overlaps

from .conftest import kb, write


def _config(**settings: Any) -> Any:
    return config_from_dict({"plugins": {"settings": {"presidio": {"enabled": True, **settings}}}})


def _request(tenant: str = "acme") -> GroundingRequest:
    return GroundingRequest(user=UserContext.of("u", tenant), prompt="q")


def _screen(text: str, config: Any, tenant: str = "acme") -> Any:
    return presidio_pii.screen_output(
        request=_request(tenant), draft=Draft(request_id="r", text=text), sources=[], config=config
    )


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every name lookup or connection attempt is recorded and refused."""
    attempts: list[object] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args[:2])
        raise OSError("network access attempted in a test that must stay offline")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: refuse(*a))
    return attempts


@pytest.mark.parametrize(
    ("text", "value", "entity"),
    [
        ("Write to jane.doe@example.co.uk today.", "jane.doe@example.co.uk", "EMAIL_ADDRESS"),
        ("Card 4111 1111 1111 1111 was charged.", "4111 1111 1111 1111", "CREDIT_CARD"),
        ("Pay to GB82 WEST 1234 5698 7654 32 please.", "GB82 WEST 1234 5698 7654 32", "IBAN_CODE"),
        ("My phone number is +44 20 7946 0958.", "+44 20 7946 0958", "PHONE_NUMBER"),
        ("Her SSN is 536-22-8841.", "536-22-8841", "US_SSN"),
        ("The laptop at 10.20.30.40 sent it.", "10.20.30.40", "IP_ADDRESS"),
    ],
)
def test_detects_with_exact_spans(text: str, value: str, entity: str) -> None:
    found = presidio_pii.find_pii(text, _config())
    start = text.index(value)
    assert (start, start + len(value), entity) in [(s, e, label) for s, e, label, _ in found]


def test_checksums_and_tricky_numbers() -> None:
    config = _config()
    assert presidio_pii.find_pii("Order 4111111111111112 shipped on 2026-03-12.", config) == []  # Luhn fails
    assert presidio_pii.find_pii("IBAN GB82 WEST 1234 5698 7654 33 is mistyped.", config) == []  # mod-97 fails
    assert presidio_pii.find_pii("In 2026 the budget grew by 3.5 percent over 12 months.", config) == []


def test_screen_output_verdict_and_redaction() -> None:
    text = "Mail jane@example.com, call +1 415 555 0100 (mobile) about card 4111111111111111, SSN 536-22-8841."
    v = _screen(text, _config())
    assert v is not None and v.stage == "output" and v.plugin == "presidio" and v.action is Action.REDACT
    assert {label for *_, label in v.spans} == {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN"}
    out = apply_redactions(text, v.spans)
    for value in ("jane@example.com", "555 0100", "4111111111111111", "536-22-8841"):
        assert value not in out
    assert "[REDACTED:EMAIL_ADDRESS]" in out and "[REDACTED:US_SSN]" in out
    assert out.startswith("Mail [REDACTED:EMAIL_ADDRESS], call ")


def test_reasons_never_contain_values() -> None:
    values = ["jane@example.com", "+1 415 555 0100", "4111111111111111", "536-22-8841", "GB82WEST12345698765432"]
    text = "Contact: " + "; ".join(values)
    v = _screen(text, _config())
    assert v is not None and v.reason.startswith("personal data (presidio): ")
    assert "1 EMAIL_ADDRESS" in v.reason and "1 CREDIT_CARD" in v.reason
    dumped = str(v.to_dict())
    for value in values:
        assert value not in v.reason
        assert value not in dumped


def test_not_configured_means_no_verdict_and_no_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)  # any import attempt would now fail
    monkeypatch.setattr(presidio_pii, "_ENGINES", {})
    text = "Mail jane@example.com"
    assert _screen(text, config_from_dict({})) is None
    not_enabled = config_from_dict({"plugins": {"settings": {"presidio": {"entities": ["EMAIL_ADDRESS"]}}}})
    assert _screen(text, not_enabled) is None


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    monkeypatch.setattr(presidio_pii, "_ENGINES", {})
    with pytest.raises(MissingExtra, match=r"pip install 'groundwire\[presidio\]'"):
        _screen("Mail jane@example.com", _config())


def test_module_imports_without_presidio(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("presidio_analyzer", "spacy", "tldextract"):
        monkeypatch.setitem(sys.modules, name, None)
    spec = importlib.util.spec_from_file_location("presidio_pii_copy", presidio_pii.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # must not import presidio
    assert module.screen_output(
        request=_request(), draft=Draft(request_id="r", text="a@b.org"), sources=[], config=config_from_dict({})
    ) is None


def test_per_tenant_override_and_disable() -> None:
    config = config_from_dict(
        {
            "plugins": {
                "settings": {
                    "presidio": {
                        "enabled": True,
                        "entities": ["EMAIL_ADDRESS", "PHONE_NUMBER"],
                        "tenants": {
                            "beta": {"enabled": False},
                            "gamma": {"action": "flag", "entities": ["EMAIL_ADDRESS"]},
                            "delta": {"score_threshold": 0.9},
                        },
                    }
                }
            }
        }
    )
    text = "Mail a@b.org or call +1 415 555 0100; SSN 536-22-8841."
    v = _screen(text, config, "acme")
    assert v is not None and v.action is Action.REDACT
    assert {label for *_, label in v.spans} == {"EMAIL_ADDRESS", "PHONE_NUMBER"}  # SSN not asked for
    assert _screen(text, config, "beta") is None
    g = _screen(text, config, "gamma")
    assert g is not None and g.action is Action.FLAG and {label for *_, label in g.spans} == {"EMAIL_ADDRESS"}
    d = _screen(text, config, "delta")  # the phone number scores below 0.9 without context words
    assert d is not None and {label for *_, label in d.spans} == {"EMAIL_ADDRESS"}


def test_enabled_for_one_tenant_only() -> None:
    config = config_from_dict({"plugins": {"settings": {"presidio": {"tenants": {"acme": {"enabled": True}}}}}})
    assert _screen("Mail a@b.org", config, "acme") is not None
    assert _screen("Mail a@b.org", config, "other") is None


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"entities": ["NOT_AN_ENTITY"]}, "entities"),
        ({"entities": ["PERSON"]}, "entities"),  # NER without a spaCy model
        ({"spacy_model": "xx_no_such_model_installed"}, "spacy_model"),
        ({"action": "delete"}, "action"),
        ({"score_threshold": 1.5}, "score_threshold"),
    ],
)
def test_configuration_errors_name_the_key(settings: dict[str, Any], key: str, no_network: list[object]) -> None:
    with pytest.raises(ConfigError, match=rf"plugins\.settings\.presidio\.{key}"):
        _screen("Mail a@b.org", _config(**settings))
    assert no_network == []  # in particular, a missing spaCy model is never downloaded


def test_offline_build_and_analysis(monkeypatch: pytest.MonkeyPatch, no_network: list[object]) -> None:
    import tldextract

    def module_extractor(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tldextract's module-level extractor fetches the public-suffix list over the network")

    # the fixture alone could pass on a machine whose tldextract disk cache is already filled
    monkeypatch.setattr(tldextract, "extract", module_extractor)
    monkeypatch.setattr(presidio_pii, "_ENGINES", {})  # build anew with the network refused
    text = "Mail jane.doe@example.co.uk or ops@intranet.example.com, see https://intranet.example.com/hr."
    found = presidio_pii.find_pii(text, _config())
    assert [label for _, _, label, _ in found] == ["EMAIL_ADDRESS", "EMAIL_ADDRESS"]
    everything = presidio_pii.analyzer(_config()).analyze(text=text, language="en")  # every recogniser runs
    assert {r.entity_type for r in everything} >= {"EMAIL_ADDRESS", "URL"}
    assert no_network == []


def test_engine_built_once_per_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(presidio_pii, "_ENGINES", {})
    builds: list[tuple[str, str]] = []
    real_build = presidio_pii._build
    gate = threading.Barrier(4)

    def counting_build(language: str, spacy_model: str) -> Any:
        builds.append((language, spacy_model))
        return real_build(language, spacy_model)

    def get(_: int) -> Any:
        gate.wait()
        return presidio_pii.analyzer(_config(), "en", "")

    monkeypatch.setattr(presidio_pii, "_build", counting_build)
    with ThreadPoolExecutor(4) as pool:
        engines = list(pool.map(get, range(4)))
    assert builds == [("en", "")]
    assert all(e is engines[0] for e in engines)


def test_spacy_pipeline_path_adds_person_and_location(tmp_path: Path, no_network: list[object]) -> None:
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PERSON", "pattern": "Jane Doe"}, {"label": "GPE", "pattern": "Lisbon"}])
    nlp.to_disk(tmp_path / "pipeline")
    config = _config(spacy_model=str(tmp_path / "pipeline"))
    text = "Jane Doe moved to Lisbon; mail jane@example.com."
    v = _screen(text, config)
    assert v is not None
    assert sorted((text[s:e], label) for s, e, label in v.spans) == [
        ("Jane Doe", "PERSON"),
        ("Lisbon", "LOCATION"),
        ("jane@example.com", "EMAIL_ADDRESS"),
    ]
    assert no_network == []


def test_finds_every_clear_cut_positive_of_the_comparison_set() -> None:
    config = _config()
    clear = [c for c in CASES if c.clear]
    assert clear
    for case in clear:
        predicted = [(s, e) for s, e, _, _ in presidio_pii.find_pii(case.text, config)]
        for gold in gold_spans(case):
            assert any(overlaps(p, gold) for p in predicted), case.text


def test_redacts_through_the_grounder(make_grounder, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    write(corpus / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    write(
        corpus / "payroll.md",
        """
        # Payroll

        Salaries are paid on the 25th of every month. Payroll questions go to payroll.team@example.com,
        and refunds to IBAN GB82 WEST 1234 5698 7654 32.
        """,
    )
    g = make_grounder(
        {"kb": kb(corpus)},
        generator={"name": "extractive", "options": {"min_similarity": 0.0}},
        plugins={
            "load_entrypoints": False,
            "disabled": ["pii"],  # so the redaction below is the presidio plugin's alone
            "settings": {"prompt_shield": {"use_model": False}, "presidio": {"enabled": True}},
        },
    )
    g.sync()
    draft = g.ground("When are salaries paid and where do payroll questions and refunds go?", "alice", top_k=3)
    assert draft.status is DraftStatus.PENDING_REVIEW
    assert "payroll.team@example.com" not in draft.text and "GB82" not in draft.text
    assert "[REDACTED:EMAIL_ADDRESS]" in draft.text and "[REDACTED:IBAN_CODE]" in draft.text
    v = next(v for v in draft.verdicts if v.plugin == "presidio")
    assert v.action is Action.REDACT and v.spans
    assert not any(v.plugin == "pii" for v in draft.verdicts)
