"""GPT-2's sizes (`gpt2_edu.model.config`): presets, parameter counts, and `config.json` read without trusting it."""

import json
import logging
import warnings

import pytest
import torch
import transformers
from transformers import GPT2LMHeadModel

from gpt2_edu.model.config import MAX_PARAMS, GPTConfig, config_from_hf, config_to_hf, param_count
from gpt2_edu.model.gpt import GPT

transformers.utils.logging.disable_progress_bar()


def tiny_model(vocab_size=300, seed=0):
    "A small GPT with every tensor moved away from its initial value (so a mapping mistake would show)."
    torch.manual_seed(seed)
    model = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=vocab_size)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model


def transformers_messages(folder):
    "Everything transformers logs or warns while loading `folder`."
    records = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_warning()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            GPT2LMHeadModel.from_pretrained(folder)
    finally:
        logger.removeHandler(handler)
        transformers.logging.set_verbosity(previous)
    return [record.getMessage() for record in records if record.levelno >= logging.WARNING] + [
        str(w.message) for w in caught
    ]


def test_absurd_config_refused_before_allocating(tmp_path):
    hf_config = config_to_hf(GPTConfig.from_preset("gpt2-tiny", vocab_size=300))
    (tmp_path / "config.json").write_text(json.dumps({**hf_config, "n_layer": 10**6, "n_embd": 768, "n_head": 12}))
    # no weights in the folder: had the config been accepted, the error would be about the missing weights
    with pytest.raises(ValueError) as error:
        GPT.from_pretrained(tmp_path)
    message = str(error.value)
    assert "n_layer=1000000" in message and f"over the limit of {MAX_PARAMS:,}" in message
    assert "MAX_PARAMS" in message and "is this config.json right?" in message


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"n_embd": 10**6, "n_head": 1}, "over the limit"),
        ({"n_positions": 10**9}, "over the limit"),
        ({"vocab_size": 10**9}, "over the limit"),
        ({"n_layer": -3}, "n_layer=-3 must be a positive integer"),
        ({"n_layer": 2.5}, "n_layer=2.5 must be a positive integer"),
        ({"n_layer": True}, "n_layer=True must be a positive integer"),
    ],
)
def test_config_sizes_checked(change, expected):
    hf_config = config_to_hf(GPTConfig.from_preset("gpt2-tiny", vocab_size=300))
    with pytest.raises(ValueError, match=expected):
        config_from_hf({**hf_config, **change})


def test_config_json_not_json_or_not_a_dict(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config.json is not valid JSON"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="model_type='list', expected 'gpt2'"):
        GPT.from_pretrained(tmp_path)


def test_the_largest_gpt2_is_within_the_limit():
    with torch.device("meta"):
        xl = GPT(GPTConfig.from_preset("gpt2-xl"))
    assert config_from_hf(config_to_hf(xl.config)) == xl.config


def test_small_vocabulary_config_names_its_end_of_text_and_loads_without_warnings(tmp_path):
    model = tiny_model(vocab_size=2048)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["bos_token_id"] == saved["eos_token_id"] == 2047
    assert transformers_messages(tmp_path) == []


def test_the_old_config_did_warn(tmp_path):
    "The check above can fail: a config.json with GPT-2's 50256 in a 2,048-token vocabulary makes transformers warn."
    model = tiny_model(vocab_size=2048)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**saved, "bos_token_id": 50256, "eos_token_id": 50256}))
    assert any("50256" in message for message in transformers_messages(tmp_path))


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(n_embd=100, n_head=12), "n_embd=100 is not divisible by n_head=12"),
        (dict(n_layer=True), "n_layer=True must be a positive integer"),
        (dict(pad_vocab_to=0), "pad_vocab_to=0 must be a positive integer"),
        (dict(dropout=1.0), r"dropout=1.0 must be a number in \[0, 1\)"),
    ],
)
def test_bad_settings_are_refused_by_name(settings, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**settings)


def test_a_preset_takes_overrides():
    assert GPTConfig.from_preset("gpt2-mini", vocab_size=4096).vocab_size == 4096


@pytest.mark.parametrize(
    "config",
    [GPTConfig.from_preset("gpt2-tiny", vocab_size=77, pad_vocab_to=64), GPTConfig(n_layer=3, bias=False)],
    ids=["padded vocabulary", "no biases"],
)
def test_param_count_on_paper_equals_the_built_model(config):
    with torch.device("meta"):
        model = GPT(config)
    assert param_count(config) == model.num_params()


@pytest.mark.parametrize(
    "hf_config, message",
    [
        ({"model_type": "bert"}, "not a GPT-2 checkpoint"),
        ([1, 2], "model_type='list'"),
        ({"model_type": "gpt2", "n_embd": 8}, "lacks vocab_size, n_positions"),
        ("n_layer='2'", "n_layer='2' must be a positive integer"),
        ("activation_function='relu'", "unsupported GPT-2 variant"),
    ],
)
def test_config_json_refusals(hf_config, message):
    if isinstance(hf_config, str):  # one field of a good config changed
        field, value = hf_config.split("=")
        hf_config = {**config_to_hf(GPTConfig.from_preset("gpt2-tiny", vocab_size=100)), field: value.strip("'")}
    with pytest.raises(ValueError, match=message):
        config_from_hf(hf_config)


def test_config_to_hf_takes_the_end_of_text_id_and_refuses_one_outside_the_vocabulary():
    tiny = GPTConfig.from_preset("gpt2-tiny", vocab_size=100)
    assert config_to_hf(tiny, eos_token_id=0)["bos_token_id"] == 0
    with pytest.raises(ValueError, match=r"eos_token_id=100 is outside the vocabulary \[0, 100\)"):
        config_to_hf(tiny, eos_token_id=100)
