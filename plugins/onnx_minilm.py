"""ONNX Runtime backend for the bundled all-MiniLM-L6-v2, exported once from the package's own weights.

Why: on 2 cores a query embeds in about 5 ms with ONNX Runtime against 12-15 ms with torch, with the same
vectors (cosine 1.0000 against sentence-transformers; ``tests/test_onnx_embedder.py`` checks it), and a
process that finds the exported model never imports torch.

How: the first use exports the transformer with ``torch.onnx.export`` (the TorchScript exporter, which
needs the ``onnx`` package) into a cache folder, then every process loads that file with ONNX Runtime
and tokenises with the model's own ``tokenizer.json`` (the ``tokenizers`` library). Pooling and
normalisation follow the model's sentence-transformers configuration (mean pooling over the attention
mask, unit length, 256-token limit). Nothing is downloaded: the export reads only the package folder.

Cache folder: ``GROUNDWIRE_MODEL_CACHE``, else ``$XDG_CACHE_HOME/groundwire/models``, else
``~/.cache/groundwire/models`` (a per-user temporary folder when that is not writable). Its name includes
a fingerprint of the source weights and the exporter versions, so an upgraded model package is exported
again. The file is written under a temporary name and renamed, so a crash or two processes exporting at
once never leave a half-written model behind.

int8 (``backend = "onnx-int8"``): the exported fp32 file is quantized once, offline, with ONNX Runtime's
dynamic quantization (``onnxruntime.quantization.quantize_dynamic``, int8 weights, activations quantized
per batch at run time) into ``model-int8.onnx`` beside it, written under a temporary name and renamed; its
SHA-256 is recorded in ``model-int8.json`` and checked at every load (a file that does not match is
quantized again). Its vectors approximate the fp32 ones (cosine ~0.99); ``benchmarks.beir --through-product``
and ``benchmarks.onnx_int8`` measure the cost. Dynamic quantization picks one activation scale per tensor per
model run, so in a batch a text's vector would depend on the other texts (and their padding): the int8 model
therefore runs one text per run, and a text's int8 vector is the same whatever it is embedded with (as fp32's
is), which the prompt shield's invariants rely on (a filler flood never lowers a prompt's score). Length-sorted
batches carry almost no padding, so little batching is lost (``benchmarks.onnx_int8 --parts speed`` measures
both ways; figures in the README).

Threads: ``intra_op`` = the machine's physical cores available to this process (``threads`` overrides),
``inter_op`` = 1 and sequential execution (MiniLM's graph is a chain: parallel branches only add
scheduling). Batches are formed by token length (texts tokenized once, sorted, cut into batches of about
equal length, results put back in the caller's order), so almost no padding is computed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OnnxSentenceEncoder", "cache_root", "cpu_int8_dot", "export_onnx", "onnx_model_path", "physical_cores",
           "quantize_int8"]

log = logging.getLogger("groundwire.plugins.onnx_minilm")
_LOCK = threading.Lock()
OPSET = 17


def cache_root() -> Path:
    env = os.environ.get("GROUNDWIRE_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "groundwire" / "models"


def _fingerprint(model_dir: Path) -> str:
    """Cheap identity of the source model: weight and config file sizes and contents of small files."""
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(os.listdir(model_dir)):
        p = model_dir / name
        if not p.is_file():
            continue
        st = p.stat()
        h.update(f"{name}:{st.st_size}".encode())
        if st.st_size < 1_000_000:
            h.update(p.read_bytes())
    h.update(f"opset{OPSET}".encode())
    return h.hexdigest()


def onnx_model_path(model_dir: str | Path) -> Path:
    """Where the exported model of ``model_dir`` lives (it may not exist yet).

    Without ``GROUNDWIRE_MODEL_CACHE``, an unwritable home cache (a read-only home, a service account)
    falls back to a per-user folder in the temporary directory.
    """
    src = Path(model_dir)
    name = f"{src.name}-onnx-{_fingerprint(src)}"
    root = cache_root()
    if not os.environ.get("GROUNDWIRE_MODEL_CACHE") and not (root / name / "model.onnx").exists():
        try:
            root.mkdir(parents=True, exist_ok=True)
            if not os.access(root, os.W_OK):
                raise PermissionError(root)
        except OSError:
            root = Path(tempfile.gettempdir()) / f"groundwire-models-{os.getuid() if hasattr(os, 'getuid') else 0}"
    return root / name / "model.onnx"


def export_onnx(model_dir: str | Path, out: Path | None = None) -> Path:
    """Export the transformer of a local sentence-transformers folder to ONNX (offline); returns the file."""
    src = Path(model_dir)
    out = out or onnx_model_path(src)
    if out.exists():
        return out
    try:
        import onnx  # noqa: F401  - the TorchScript exporter needs it
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ImportError(
            f"exporting the embedder to ONNX needs torch, transformers and onnx ({exc}); "
            "run `pip install onnx` or set [embedder.options] backend = \"torch\""
        ) from exc
    hf_logging.disable_progress_bar()
    t0 = time.perf_counter()
    model = AutoModel.from_pretrained(str(src), local_files_only=True).eval()

    class _Encoder(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    dummy = torch.ones((1, 8), dtype=torch.int64)
    axes = {0: "batch", 1: "tokens"}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Encoder(model),
                (dummy, dummy, torch.zeros_like(dummy)),
                str(tmp),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "last_hidden_state": axes
                },
                opset_version=OPSET,
                dynamo=False,
            )
        (out.parent / "manifest.json").write_text(
            json.dumps(
                {"source": str(src), "opset": OPSET, "torch": torch.__version__, "exported_at": time.time()},
                indent=1,
            )
        )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s to ONNX in %.1fs: %s", src.name, time.perf_counter() - t0, out)
    return out


def _max_tokens(model_dir: Path) -> int:
    """The token limit from the sentence-transformers files; checks that pooling is mean pooling."""
    max_len = 256
    cfg = model_dir / "sentence_bert_config.json"
    if cfg.exists():
        max_len = int(json.loads(cfg.read_text()).get("max_seq_length", max_len))
    pool = model_dir / "1_Pooling" / "config.json"
    if pool.exists() and not json.loads(pool.read_text()).get("pooling_mode_mean_tokens", True):
        raise ValueError(f"{model_dir}: only mean pooling is supported by the ONNX backend")
    return max_len


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-thread siblings counted once)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            cores.add(("?", str(cpu)))
    return max(1, len(cores))


def cpu_int8_dot(cpuinfo: str | None = None) -> str | None:
    """The x86 int8 dot-product extension of this CPU that ONNX Runtime's int8 kernels use (``avx512_vnni`` or
    ``avx_vnni``, as ``/proc/cpuinfo`` names it), else ``None`` (no VNNI, not Linux/x86, unreadable).

    Why it decides ``backend = "auto"``: with VNNI the int8 model runs ~1.5x the fp32 one here (see the README's
    Ingestion section); without it int8 matrix products are emulated and the gain shrinks or vanishes."""
    if cpuinfo is None:
        return _this_cpu_int8_dot()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    for flag in ("avx512_vnni", "avx_vnni"):
        if flag in flags:
            return flag
    return None


@functools.cache
def _this_cpu_int8_dot() -> str | None:
    """:func:`cpu_int8_dot` of this machine, read once per process (``backend = "auto"`` asks on every model
    lookup, e.g. each prompt's embedding; the CPU does not change under a running process)."""
    try:
        return cpu_int8_dot(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


#: how the int8 file is made; a file recorded with other settings is made again
INT8_SETTINGS = {"weight_type": "QInt8", "per_channel": True, "method": "dynamic"}


def quantize_int8(fp32: Path) -> Path:
    """The int8 (dynamic quantization) model of the fp32 ONNX file ``fp32``, made once beside it (see the
    module docstring); a file whose hash does not match its record is made again."""
    out = fp32.with_name("model-int8.onnx")
    record = fp32.with_name("model-int8.json")
    if out.exists() and record.exists():
        try:
            rec = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            rec = {}
        if rec.get("settings") == INT8_SETTINGS and rec.get("sha256") and rec.get("sha256") == _sha256(out):
            return out
        log.warning("the int8 model %s does not match its recorded hash; quantizing again", out)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    t0 = time.perf_counter()
    tag = f"{os.getpid()}.{threading.get_ident()}"
    tmp = out.with_name(f".{out.name}.{tag}.tmp")
    tmp_record = record.with_name(f".{record.name}.{tag}.tmp")
    try:
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        digest = _sha256(tmp)
        tmp_record.write_text(json.dumps({"sha256": digest, "source": fp32.name, "source_sha256": _sha256(fp32),
                                          "settings": INT8_SETTINGS, "made_at": time.time()}, indent=1),
                              encoding="utf-8")
        os.replace(tmp, out)  # the model first, then its record: a record never names a missing file
        os.replace(tmp_record, record)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_record.unlink(missing_ok=True)
    log.info("quantized %s to int8 in %.1fs: %s", fp32.name, time.perf_counter() - t0, out)
    return out


class OnnxSentenceEncoder:
    """A sentence encoder with the ``encode`` call shape of sentence-transformers (unit vectors out).

    :param threads: ONNX Runtime intra-op threads; 0 = the physical cores (:func:`physical_cores`)
    :param quantized: run the int8 model (:func:`quantize_int8`) instead of the fp32 export
    """

    def __init__(self, model_dir: str | Path, threads: int = 0, quantized: bool = False) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        src = Path(model_dir)
        with _LOCK:
            path = export_onnx(src)
            if quantized:
                path = quantize_int8(path)
        self.max_len = _max_tokens(src)
        self.tokenizer = Tokenizer.from_file(str(src / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_len)
        self.tokenizer.no_padding()
        self.threads = threads or physical_cores()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = path
        self.quantized = quantized

    def _hidden(self, encs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """The last hidden states ``(batch, width, 384)`` and the attention mask of one batch."""
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(encs):
            n = len(e.ids)
            ids[i, :n] = e.ids
            mask[i, :n] = 1
        types = np.zeros_like(ids)
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        return np.asarray(hidden, dtype=np.float32), mask

    def _batches(
        self, encs: Sequence[Any], batch_size: int
    ) -> Iterator[tuple[np.ndarray, list[Any], np.ndarray, np.ndarray]]:
        """One model run per batch of at most ``batch_size`` encodings, formed by token length (see the
        module docstring): ``(indices into encs, their encodings, hidden states, mean-pooled unit vectors)``."""
        order = np.argsort([len(e.ids) for e in encs], kind="stable")
        if self.quantized:
            batch_size = 1  # per-run activation scales: one text per run keeps its vector batch-independent
        for start in range(0, len(encs), batch_size):
            idx = order[start : start + batch_size]
            batch = [encs[i] for i in idx]
            hidden, mask = self._hidden(batch)
            m = mask[..., None].astype(np.float32)
            yield idx, batch, hidden, _unit((hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9))

    def encode(self, texts: Sequence[str], batch_size: int = 32, **_: Any) -> np.ndarray:
        """Unit vectors for ``texts``, in their order; batches are formed by token length (see the module
        docstring), at most ``batch_size`` texts each."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        out: np.ndarray | None = None
        for idx, _batch, _hidden, vecs in self._batches(self.tokenizer.encode_batch(texts), batch_size):
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
        assert out is not None
        return out

    def encode_tokens(
        self, texts: Sequence[str], batch_size: int = 32
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's vector (exactly :meth:`encode`'s) and, from the same model run, its last-layer token
        states ``(tokens, 384)`` float32, special tokens included (the rows :meth:`encode` mean-pools; at
        most the 256-token window). A head that pools tokens its own way (the direct prompt shield's
        attention pooling) reads them without a second model run."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32), []
        vecs = np.empty((len(texts), 0), dtype=np.float32)
        states: list[np.ndarray] = [np.zeros((0, 0), np.float32)] * len(texts)
        for idx, batch, hidden, pooled in self._batches(self.tokenizer.encode_batch(texts), batch_size):
            if vecs.shape[1] == 0:
                vecs = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            vecs[idx] = pooled
            for row, (ti, e) in enumerate(zip(idx, batch, strict=True)):
                states[int(ti)] = np.ascontiguousarray(hidden[row, : len(e.ids)])
        return vecs, states

    def encode_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]], batch_size: int = 32
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's vector (exactly :meth:`encode`'s) and, from the same model run, one unit vector per
        character span of it: the mean of the hidden states of the span's tokens ("late chunking",
        Günther et al., 2024: a sentence's vector read in its chunk's context).

        A token belongs to the span its first character falls in; special tokens belong to none. A span
        that the 256-token window truncates (or cuts) is read from a further run over the text from that
        span's start on, so every span gets a vector; a span with no token at all (only characters the
        tokenizer drops) gets its own text's vector, or the text's vector when it is blank.
        Invariants: ``len(out[1][i]) == len(spans[i])``; every row has unit length."""
        texts = list(texts)
        if len(spans) != len(texts):
            raise ValueError(f"{len(spans)} span lists for {len(texts)} texts")
        if not texts:
            return np.zeros((0, 0), dtype=np.float32), []
        encs = self.tokenizer.encode_batch(texts)
        vecs = np.empty((len(texts), 0), dtype=np.float32)
        span_out: list[np.ndarray] = [np.zeros((len(s), 0), np.float32) for s in spans]
        later: list[tuple[int, int, int]] = []  # (text, span index, start) read again from ``start``
        blank: list[tuple[int, int]] = []
        for idx, batch, hidden, pooled in self._batches(encs, batch_size):
            if vecs.shape[1] == 0:
                vecs = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
                span_out = [np.empty((len(s), pooled.shape[1]), np.float32) for s in spans]
            vecs[idx] = pooled
            for row, (ti, e) in enumerate(zip(idx, batch, strict=True)):
                off = np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2)  # one C conversion, no token loop
                starts = off[:, 0]
                real = ~np.asarray(e.special_tokens_mask, dtype=bool) & (off[:, 1] > off[:, 0])
                cut = bool(e.overflowing) or len(e.ids) >= self.max_len
                covered = int(off[real, 1].max()) if real.any() else 0
                for si, (a, b) in enumerate(spans[ti]):
                    if not texts[ti][a:b].strip():
                        blank.append((int(ti), si))
                        continue
                    if cut and b > covered and a > 0:  # a span longer than the window itself: its head
                        later.append((int(ti), si, a))
                        continue
                    sel = real & (starts >= a) & (starts < b)
                    if not sel.any():
                        blank.append((int(ti), si))
                        continue
                    span_out[ti][si] = _unit(hidden[row, : len(e.ids)][sel].mean(axis=0, keepdims=True))[0]
        if later:
            # the rest of a truncated text, from its first unread span on, read again (in context of its
            # own following text); spans are shifted into the tail's coordinates
            tails: dict[int, int] = {}
            for ti, _, a in later:
                tails[ti] = min(a, tails.get(ti, a))
            keys = sorted(tails)
            picks = {ti: [si for si, (a, _) in enumerate(spans[ti]) if a >= tails[ti]] for ti in keys}
            tail_spans = [[(spans[ti][si][0] - tails[ti], spans[ti][si][1] - tails[ti]) for si in picks[ti]]
                          for ti in keys]
            _, got = self.encode_spans([texts[ti][tails[ti]:] for ti in keys], tail_spans, batch_size)
            pos = {ti: k for k, ti in enumerate(keys)}
            for ti, si, _ in later:
                span_out[ti][si] = got[pos[ti]][picks[ti].index(si)]
        if blank:
            own = self.encode([texts[ti][a:b].strip() or texts[ti] for ti, si in blank
                               for a, b in [spans[ti][si]]], batch_size)
            for (ti, si), v in zip(blank, own, strict=True):
                span_out[ti][si] = v
        return vecs, span_out


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norms, 1e-12), dtype=np.float32)
