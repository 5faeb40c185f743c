"""What the READMEs and examples tell a new user matches the repository: the commands name
files that exist, the samples' README repeats the README's main command, and the CPU-only
install keeps every PyTorch package the export extra pulls on PyTorch's CPU build."""
import re

from tests.helpers.common import ROOT

README = (ROOT / "README.md").read_text()
DOCS = [ROOT / "README.md", ROOT / "samples" / "README.md"] + sorted(
    (ROOT / "examples").glob("*.py"))


def _main_command():
    """The README's main command: the two-minute start's `jetseg segment ...`."""
    m = re.search(r'pip install -e "\.\[desktop\]" && (jetseg segment [^\n]+)', README)
    assert m, "the two-minute start's command is gone"
    return m.group(1).strip()


def test_samples_readme_repeats_the_main_command():
    samples = (ROOT / "samples" / "README.md").read_text()
    assert "README's main command" in samples
    assert _main_command() in samples


def test_every_model_file_a_doc_or_example_names_exists():
    named, made = set(), set()
    for doc in DOCS:
        text = doc.read_text()
        named |= set(re.findall(r"engines/[\w.-]+\.onnx", text))
        made |= set(re.findall(r"-o (engines/[\w.-]+\.onnx)", text))   # the reader makes it
    named -= made
    assert "engines/camvid.onnx" in named
    missing = sorted(n for n in named if not (ROOT / n).is_file())
    assert not missing, missing
    for ex in sorted((ROOT / "examples").glob("*.py")):     # examples run the default model
        assert "engines/camvid-demo.onnx" not in ex.read_text(), ex.name


def test_cpu_torch_comes_first_and_the_setup_commands_stay():
    assert 'python3 -m pip install -e ".[desktop]" && jetseg segment' in README
    test_cmd = 'python3 -m pip install -e ".[dev,desktop,export]" && python3 -m pytest -q tests'
    assert test_cmd in README
    assert test_cmd in (ROOT / ".ci" / "run").read_text()         # what CI runs
    cpu = re.search(r"python3 -m pip install ([\w ]+) --index-url "
                    r"https://download\.pytorch\.org/whl/cpu\n", README)
    assert cpu, "the CPU-only PyTorch install is not in the README"
    section = README.split("## From labelled images to a model file", 1)[1]
    assert section.index("download.pytorch.org/whl/cpu") < section.index(
        '\n    pip install -e ".[export]"')                      # the command, not the prose
    setup = (ROOT / "setup.py").read_text()
    export = re.search(r'"export": \[([^\]]*)\]', setup).group(1)
    torch_pkgs = set(re.findall(r'"(torch\w*)', export))
    assert {"torch", "torchvision"} <= torch_pkgs
    assert torch_pkgs <= set(cpu.group(1).split()), (torch_pkgs, cpu.group(1))
