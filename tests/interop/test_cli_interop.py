"""``archdsl import`` and ``archdsl export --hf`` end to end, and the errors a config file can
give: one ``error: FILE: ...`` line each, naming what was expected, never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archdsl
from archdsl.cli import app
from archdsl.errors import ArchDSLError
from tests.interop.helpers import sublayers

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, list(args), input=stdin)


def _config(tmp_path, text: str) -> str:
    path = tmp_path / "config.json"
    path.write_text(text)
    return str(path)


def test_import_prints_checked_text_and_writes_out(tmp_path):
    result = run("import", str(EXAMPLES / "hf" / "mamba2_130m.json"))
    assert result.exit_code == 0, result.output
    spec = archdsl.parse(result.output)
    assert sublayers(spec) == ["ssm"] * 24 and spec.model.vocab == 50288 and spec.model.tie_embeddings
    assert result.output.splitlines()[-1] == "24x(ssm)"
    out = tmp_path / "m.arch"
    result = run("import", str(EXAMPLES / "hf" / "mamba2_130m.json"), "--out", str(out))
    assert result.exit_code == 0 and f"wrote {out}" in result.output
    assert run("check", str(out)).output.startswith("ok: 24 sub-layers, d_model=768")


def test_import_nemotron_example_needs_approximate_and_matches_its_pattern():
    path = str(EXAMPLES / "hf" / "nemotron_h_8b.json")
    result = run("import", path)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {path}: archdsl cannot express this nemotron_h config exactly:")
    assert "mlp_hidden_act=relu2" in result.output and "--approximate" in result.output
    result = run("import", path, "--approximate")
    assert result.exit_code == 0, result.output
    pattern = json.loads((EXAMPLES / "hf" / "nemotron_h_8b.json").read_text())["hybrid_override_pattern"]
    letters = {"ssm": "M", "attn": "*", "mlp": "-"}
    assert "".join(letters[t] for t in sublayers(archdsl.parse(result.output))) == pattern
    # the same layout as examples/nemotron_h.arch, which writes it by hand at a smaller width
    assert sublayers(archdsl.parse(result.output)) == sublayers(archdsl.load(EXAMPLES / "nemotron_h.arch"))


def test_import_reads_standard_input():
    text = (EXAMPLES / "hf" / "mamba2_130m.json").read_text()
    result = run("import", "-", stdin=text)
    assert result.exit_code == 0 and result.output.startswith("# imported from <stdin> (model_type mamba2)")


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"model_type": "llama",', ":1:24: malformed JSON: Expecting property name enclosed in double quotes"),
        ("[1, 2]", ": expected a JSON object of config fields, not a list"),
        ('{"hidden_size": 64}', ": missing field 'model_type' (expected one of llama, mistral, qwen3,"),
        ('{"model_type": "gpt2"}', ": cannot import model_type 'gpt2'; supported: llama, mistral"),
        ('{"model_type": "mamba2", "hidden_size": 64}', ": missing field 'num_heads' (expected an integer)"),
        ('{"model_type": "mamba2", "hidden_size": "big"}', ": field 'hidden_size' is 'big'; expected an integer"),
    ],
)
def test_config_errors_are_one_line(tmp_path, text, message):
    path = _config(tmp_path, text)
    result = run("import", path)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {path}{message}"), result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_unknown_and_unexpressible_fields_are_named_never_dropped(tmp_path):
    fields = json.loads((EXAMPLES / "hf" / "mamba2_130m.json").read_text())
    fields.update(use_bias=True, fancy_new_gate=3)
    path = _config(tmp_path, json.dumps(fields))
    result = run("import", path)
    assert result.exit_code == 1
    assert "use_bias=True: archdsl's projections have no bias" in result.output
    assert "fancy_new_gate=3: a field archdsl does not read" in result.output
    result = run("import", path, "--approximate")
    assert "# differs: use_bias=True" in result.output and "# differs: fancy_new_gate=3" in result.output
    # a field that does not change the model, with any value, is ignored
    fields = json.loads((EXAMPLES / "hf" / "mamba2_130m.json").read_text()) | {"use_cache": False, "pad_token_id": 7}
    assert "differs" not in archdsl.from_hf_config(fields)


def test_export_hf_json_and_its_errors(tmp_path):
    result = run("export", str(EXAMPLES / "nemotron_h.arch"), "--hf")
    assert result.exit_code == 0, result.output
    fields = json.loads(result.output)
    assert fields["hybrid_override_pattern"] == "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-"
    out = tmp_path / "layers.json"
    result = run("export", "-e", "2x(gdn mlp attn moe)", "--hf", "--out", str(out))
    assert (
        result.exit_code == 0
        and json.loads(out.read_text())["layer_types"] == ["linear_attention", "full_attention"] * 2
    )
    result = run("export", str(EXAMPLES / "zamba2.arch"), "--hf")
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot write this layout as Hugging Face layer types: sub-layer 7 (at ")
    result = run("export", str(EXAMPLES / "zamba2.arch"))
    assert result.exit_code == 2 and "--hf" in result.output


def test_import_and_export_do_not_import_torch_once_parsing_does_not():
    """The import and export paths read JSON and write text. Whether ``archdsl.parse`` itself is
    torch-free is the light core's business (issue 11); where it is, these must be too."""
    probe = "import sys, archdsl; archdsl.parse('ssm attn mlp'); print('torch' in sys.modules)"
    light = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    if light.stdout.strip() == "True":
        pytest.skip("archdsl.parse imports torch on this branch (the light core is not merged)")
    code = (
        "import sys, archdsl\n"
        "from archdsl.interop.hf_export import to_hf_layer_types\n"
        f"text = archdsl.from_hf_config({str(EXAMPLES / 'hf' / 'mamba2_130m.json')!r})\n"
        "to_hf_layer_types(archdsl.parse(text))\n"
        "print('torch' in sys.modules)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_from_hf_config_refuses_other_objects():
    with pytest.raises(ArchDSLError, match="takes a transformers config, a dict of config fields or a config.json"):
        archdsl.from_hf_config(42)


def test_readme_section_shows_real_output():
    """Every ``$ archdsl ...`` example in the README's section prints what the README shows."""
    import shlex

    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme.split("## Published configs in and out", 1)[1].split("\n## ", 1)[0]
    examples = re.findall(r"\n    \$ archdsl (.*)\n((?:    .*\n)+)", section)
    assert len(examples) == 4
    for command, shown in examples:
        result = run(*shlex.split(command, comments=True))
        expected = "".join(line[4:] + "\n" for line in shown.splitlines())
        assert result.output == expected, command
