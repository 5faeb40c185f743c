"""The package layout holds: every runtime module imports on its own in a fresh interpreter
(an import cycle or a missing dependency shows up here), no module imports another in a
cycle even through function-local imports, and no runtime module outgrows ~400 lines."""
import ast
import subprocess
import sys

from tests.helpers.common import ROOT

PACKAGES = ("jetseg", "jetseg_export")


def modules():
    out = {}
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


def test_every_runtime_module_imports_alone_in_a_fresh_interpreter():
    names = [m for m in modules() if m.startswith("jetseg.") and not m.endswith("__main__")]
    code = ("import importlib, subprocess, sys\n"
            "bad = []\n"
            "for m in sys.argv[1:]:\n"
            "    r = subprocess.run([sys.executable, '-c', 'import ' + m], capture_output=True,"
            " text=True)\n"
            "    if r.returncode: bad.append(m + ': ' + r.stderr.strip().splitlines()[-1])\n"
            "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code] + names, capture_output=True, text=True,
                       cwd=str(ROOT), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_import_cycles_counting_function_local_imports():
    mods = modules()

    def owner(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges = {}
    for m, path in mods.items():
        targets = set()
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(n, ast.Import):
                targets.update(owner(a.name) for a in n.names)
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    parts = package.split(".")[:len(package.split(".")) - n.level + 1]
                    base = ".".join(parts + ([n.module] if n.module else []))
                targets.update(owner(base + "." + a.name) or owner(base) for a in n.names)
        edges[m] = {t for t in targets if t and t != m and not t.startswith(m + ".")}
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for t in edges.get(m, ()):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack)
        stack.pop()
        state[m] = 2
    for m in edges:
        if m not in state:
            visit(m, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_runtime_module_over_400_lines():
    big = ["{} ({} lines)".format(p.relative_to(ROOT), len(p.read_text().splitlines()))
           for m, p in modules().items()
           if m.startswith("jetseg.") and len(p.read_text().splitlines()) > 400]
    assert not big, big
