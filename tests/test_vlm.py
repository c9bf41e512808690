"""VLM backend against a fake OpenAI-compatible server (httpx.MockTransport, no network)."""

from __future__ import annotations

import base64
import io
import json
import logging

import httpx
import numpy as np
import pytest
from PIL import Image

from defectlens.classify import UNKNOWN, VLMClassifier, VLMConfig, parse_taxonomy
from defectlens.classify.vlm import outline_regions, parse_choice
from defectlens.errors import ConfigError
from defectlens.types import Inspection, Region

TAX = parse_taxonomy(
    {
        "object": "magnetic tile",
        "defects": [
            {"name": "crack", "description": "a thin dark line"},
            {"name": "blowhole", "description": "small round pits"},
        ],
    }
)
SECRET = "sk-test-SECRET-1234567890"
KEY_ENV = "DEFECTLENS_TEST_VLM_KEY"


@pytest.fixture
def scene():
    img = np.full((64, 80, 3), 120, np.uint8)
    mask = np.zeros((64, 80), bool)
    mask[20:30, 30:50] = True
    ref = np.full((64, 80, 3), 118, np.uint8)
    return img, mask, ref


def reply(text, logprobs=None):
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": "t", "logprob": lp} for lp in logprobs]}
    return httpx.Response(200, json={"choices": [choice]})


def client(handler, monkeypatch, **kw) -> VLMClassifier:
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = VLMConfig(base_url="http://vlm.test/v1", model="tiny-vl", api_key_env=KEY_ENV, timeout_s=0.5, backoff_s=0.01, **kw)
    return VLMClassifier(cfg, TAX, transport=httpx.MockTransport(handler), sleep=lambda s: None)


def test_request_carries_three_images_descriptions_and_key(monkeypatch, scene):
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers.get("authorization")
        seen["url"] = str(request.url)
        seen["body"] = json.loads(request.content)
        return reply("crack", logprobs=[-0.1])

    img, mask, ref = scene
    d = client(handler, monkeypatch).classify_region(img, mask, ref, region_index=4)
    assert d.region_type.defect_type == "crack" and d.region_type.region_index == 4 and d.note is None
    assert d.region_type.method == "vlm" and d.region_type.confidence == pytest.approx(np.exp(-0.1))
    assert seen["auth"] == f"Bearer {SECRET}" and seen["url"] == "http://vlm.test/v1/chat/completions"
    content = seen["body"]["messages"][0]["content"]
    assert "a thin dark line" in content[0]["text"] and "small round pits" in content[0]["text"]
    urls = [c["image_url"]["url"] for c in content[1:]]
    assert len(urls) == 3 and all(u.startswith("data:image/png;base64,") for u in urls)
    outlined = np.asarray(Image.open(io.BytesIO(base64.b64decode(urls[1].split(",", 1)[1]))))
    assert (outlined[20, 35] == (255, 0, 0)).all()  # border pixel of the region drawn red


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Blowhole.", "blowhole"),
        ("The outlined region shows cracks.", "crack"),
        ("It could be a crack or a blowhole.", None),
        ("The weather is lovely today.", None),
        ("", None),
        ("crackle", None),
    ],
)
def test_strict_parse(text, expected):
    assert parse_choice(text, TAX.names) == expected


def test_off_topic_reply_is_unknown_with_note(monkeypatch, scene):
    img, mask, ref = scene
    d = client(lambda r: reply("I like turtles."), monkeypatch).classify_region(img, mask, ref)
    assert d.region_type.defect_type == UNKNOWN and "names no single known type" in d.note
    d2 = client(lambda r: httpx.Response(200, json={"weird": 1}), monkeypatch).classify_region(img, mask, ref)
    assert d2.region_type.defect_type == UNKNOWN and "no message text" in d2.note


def test_timeout_retries_then_unknown_without_leaking_key(monkeypatch, scene, caplog):
    calls = []

    def handler(request):
        calls.append(1)
        raise httpx.ReadTimeout("slow", request=request)

    img, mask, ref = scene
    vlm = client(handler, monkeypatch, max_retries=2)
    with caplog.at_level(logging.DEBUG):
        d = vlm.classify_region(img, mask, ref)
    assert len(calls) == 3 and d.region_type.defect_type == UNKNOWN
    assert "timed out" in d.note and "3 attempt(s)" in d.note
    assert SECRET not in caplog.text and SECRET not in d.note
    assert SECRET not in repr(vlm) and "api_key=<set" in repr(vlm)


def test_server_error_then_success_and_http_error_redacted(monkeypatch, scene):
    img, mask, ref = scene
    answers = iter([httpx.Response(503), reply("crack")])
    assert client(lambda r: next(answers), monkeypatch).classify_region(img, mask, ref).region_type.defect_type == "crack"
    # A server that echoes the key in its error body must not leak it into our message.
    echo = client(lambda r: httpx.Response(401, text=f"bad key {SECRET}"), monkeypatch)
    d = echo.classify_region(img, mask, ref)
    assert d.region_type.defect_type == UNKNOWN and "HTTP 401" in d.note and SECRET not in d.note and "***" in d.note


def test_unreachable_endpoint_inspection_still_completes(monkeypatch, scene):
    def handler(request):
        raise httpx.ConnectError("refused", request=request)

    img, mask, _ = scene
    labels = mask.astype(np.int32)
    insp = Inspection(
        "x.png",
        (80, 64),
        2.0,
        True,
        mask.astype(np.float32),
        mask,
        [Region(1, (30, 20, 50, 30), 200, 0.04, (39.5, 24.5), 1.0, 1.0)],
        region_labels=labels,
    )
    result = client(handler, monkeypatch).classify_inspection(img, insp)
    assert [t.defect_type for t in result.region_types] == [UNKNOWN]
    assert any("cannot connect" in n for n in result.notes) and any("reference" in n for n in result.notes)


def test_taxonomy_needs_descriptions():
    with pytest.raises(ConfigError, match="no description"):
        VLMClassifier(VLMConfig(), parse_taxonomy({"object": "tile", "defects": [{"name": "crack"}]}))


def test_outline_only_on_border():
    img = np.zeros((10, 10, 3), np.uint8)
    m = np.zeros((10, 10), bool)
    m[2:8, 2:8] = True
    out = outline_regions(img, [m], width=1)
    assert (out[2, 2] == (255, 0, 0)).all() and (out[5, 5] == 0).all() and (out[0, 0] == 0).all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Das ist ein ÖLFLECK.", "Ölfleck"), ("Ölfleckig", None), ("Kein Fleck, ein Riß.", "Riß"), ("裂纹", "裂纹")],
)
def test_parse_choice_reads_words_of_any_script(text, expected):
    # Word edges are letters of any script: 'Ölfleckig' is another word, not the stain.
    assert parse_choice(text, ("Ölfleck", "Riß", "裂纹")) == expected
