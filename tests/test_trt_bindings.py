"""jetseg's TensorRT code against NVIDIA's compiled Python bindings of each generation.

TensorRT cannot run here, but its bindings wheels on PyPI (tensorrt-bindings 8.6.1,
tensorrt-cu12-bindings 10.x / 11.x) hold every class, method, property and enum name;
tests/helpers/trt_bindings.py imports the real extension against stub native libraries and
lists them. The names jetseg uses come from its own code, read with ``ast``:

- every attribute used on a TensorRT object, which jetseg names for its type (the
  convention in jetseg/backends/tensorrt/__init__.py: ``engine`` is an ICudaEngine,
  ``config`` an IBuilderConfig, ``trt`` the module, ...), and ``trt.X.Y`` chains;
- every name probed with ``hasattr`` / ``getattr(obj, name, default)``;
- the methods of classes that subclass a TensorRT class (IProgressMonitor).

Each generation's real names decide every feature test the code makes (branches, early
returns, one-line probe functions such as ``strongly_typed``), so only the code that runs
on that generation is held to its names: a name used there must exist there. Code reached
only by no release on PyPI (the binding-index API of 8.2/8.4) is checked on an inferred
8.2: 8.6's names minus those that platform.OPTIONAL_API says came later. OPTIONAL_API, the
code's own statement of which release has each probed name, is checked against every real
generation, and must list exactly the names the code probes.

Skipped (with the reason) only when the package index cannot be reached.
"""
import ast
import re
from pathlib import Path

import pytest

import jetseg
from jetseg.backends.tensorrt.platform import OPTIONAL_API
from tests.helpers import trt_bindings as tb

PKG = Path(jetseg.__file__).resolve().parent
MODULE = "<module>"


def _roles():
    """{variable name: TensorRT class (MODULE for the module)} from the package doc."""
    doc = ast.get_docstring(ast.parse((PKG / "backends" / "tensorrt" / "__init__.py")
                                      .read_text()))
    out = {}
    for name, cls in re.findall(r"^    (\w+) {2,}(\w+(?: tensorrt module)?)$", doc, re.M):
        out[name] = MODULE if cls.endswith("module") else cls
    return out


ROLES = _roles()


def _sources():
    """The jetseg modules that handle TensorRT objects: those that name ``trt``."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        if any(isinstance(n, ast.Name) and n.id == "trt" or
               isinstance(n, ast.arg) and n.arg == "trt" for n in ast.walk(tree)):
            out[str(path.relative_to(PKG.parent))] = tree
    return out


SOURCES = _sources()


def _probe_functions():
    """Functions whose body is one ``return <expression>`` (feature tests such as
    platform.strongly_typed): their calls are evaluated as conditions."""
    out = {}
    for tree in SOURCES.values():
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                body = [s for s in node.body if not (isinstance(s, ast.Expr) and
                                                     isinstance(s.value, ast.Constant))]
                if len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value:
                    out[node.name] = body[0].value
    return out


PROBE_FUNCTIONS = _probe_functions()


def _string(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) \
        else None


def _dunder(name):
    return name.startswith("__") and name.endswith("__")


class Walker(object):
    """Walks the TensorRT code as one generation (``names``) would run it."""

    def __init__(self, names=None, dead=()):
        """``names`` None: no pruning, every branch is visited."""
        self.names, self.dead = names, set(dead)
        self.uses, self.probes, self.refs = [], set(), set()
        self.where = None

    def has(self, cls, member):
        if cls == MODULE:
            return member in self.names["module"]
        return member in self.names["members"].get(cls, ())

    def kind(self, node):
        """The TensorRT class (or MODULE) an expression denotes, or None."""
        if isinstance(node, ast.Name):
            return ROLES.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return ROLES.get(node.attr)
            if self.kind(node.value) == MODULE and not _dunder(node.attr):
                return node.attr
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "getattr" and len(node.args) >= 2
                and self.kind(node.args[0]) == MODULE and _string(node.args[1])):
            return _string(node.args[1])
        return None

    # ---- conditions (True / False / None = not decided by TensorRT's names) ------------
    def probe(self, node):
        """(class, name) of hasattr(X, "n") / getattr(X, "n", default), else None."""
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("hasattr", "getattr") and len(node.args) >= 2):
            if node.func.id == "getattr" and len(node.args) < 3:
                return None
            cls, name = self.kind(node.args[0]), _string(node.args[1])
            if cls is not None and name and not _dunder(name):
                return cls, name
        return None

    def cond(self, node, env):
        if self.names is None:
            return None
        p = self.probe(node)
        if p is not None:
            present = self.has(*p)
            return present if node.func.id == "hasattr" else (False if not present else None)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            v = self.cond(node.operand, env)
            return None if v is None else not v
        if isinstance(node, ast.BoolOp):
            vals = [self.cond(v, env) for v in node.values]
            if isinstance(node.op, ast.And):
                return False if False in vals else (True if all(vals) else None)
            return True if True in vals else (False if all(v is False for v in vals) else None)
        if (isinstance(node, ast.Compare) and len(node.ops) == 1 and
                isinstance(node.comparators[0], ast.Constant) and
                node.comparators[0].value is None and
                isinstance(node.ops[0], (ast.Is, ast.IsNot))):
            left = env.get(node.left.id, node.left) if isinstance(node.left, ast.Name) \
                else node.left
            p = self.probe(left)
            if p is not None and left.func.id == "getattr":
                present = self.has(*p)
                if not present:
                    return isinstance(node.ops[0], ast.Is)
            return None
        if isinstance(node, ast.Name) and node.id in env:
            return self.cond(env[node.id], env)
        if isinstance(node, ast.Call):
            f = node.func.attr if isinstance(node.func, ast.Attribute) else \
                getattr(node.func, "id", None)
            if f in PROBE_FUNCTIONS:
                return self.cond(PROBE_FUNCTIONS[f], {})
        return None

    # ---- expressions ------------------------------------------------------------------------
    def use(self, cls, name, node):
        if not _dunder(name):
            self.uses.append((cls, name, "{}:{}".format(self.where, node.lineno)))

    def expr(self, node, env):
        if node is None:
            return
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                self.expr(v, env)
                c = self.cond(v, env)
                if c is (False if isinstance(node.op, ast.And) else True):
                    break
            return
        if isinstance(node, ast.IfExp):
            self.expr(node.test, env)
            c = self.cond(node.test, env)
            if c is not False:
                self.expr(node.body, env)
            if c is not True:
                self.expr(node.orelse, env)
            return
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("hasattr", "getattr"):
            p = self.probe(node)
            if p is not None:
                self.probes.add(p)
            elif node.func.id == "getattr" and len(node.args) == 2:
                cls, name = self.kind(node.args[0]), _string(node.args[1])
                if cls is not None and name:
                    self.use(cls, name, node)
            self.expr(node.args[0], env)
            return
        if isinstance(node, ast.Attribute):
            cls = self.kind(node.value)
            if cls is not None:
                self.use(cls, node.attr, node)
            self.refs.add(node.attr)
            self.expr(node.value, env)
            return
        if isinstance(node, ast.Name):
            self.refs.add(node.id)
            return
        if isinstance(node, ast.Lambda):
            self.expr(node.body, env)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, env)
            elif isinstance(child, ast.comprehension):
                for sub in [child.target, child.iter] + child.ifs:
                    self.expr(sub, env)
            elif isinstance(child, ast.keyword):
                self.expr(child.value, env)

    # ---- statements -------------------------------------------------------------------------
    def block(self, stmts, env):
        """Visit a statement list; True when it always ends in return/raise."""
        for st in stmts:
            if self.stmt(st, env):
                return True
        return False

    def stmt(self, st, env):
        if isinstance(st, ast.If):
            self.expr(st.test, env)
            c = self.cond(st.test, env)
            if c is True:
                return self.block(st.body, dict(env))
            if c is False:
                return self.block(st.orelse, dict(env))
            a, b = self.block(st.body, dict(env)), self.block(st.orelse, dict(env))
            return a and b
        if isinstance(st, (ast.Return, ast.Raise)):
            self.expr(getattr(st, "value", None) or getattr(st, "exc", None), env)
            return True
        if isinstance(st, ast.Assign):
            self.expr(st.value, env)
            for t in st.targets:
                self.expr(t, env)
                if isinstance(t, ast.Name):
                    env[t.id] = st.value
            return False
        if isinstance(st, (ast.FunctionDef, ast.ClassDef)):
            self.definition(st, env)
            return False
        if isinstance(st, ast.Try):
            self.block(st.body, dict(env))
            for h in st.handlers:
                self.block(h.body, dict(env))
            self.block(st.orelse, dict(env))
            self.block(st.finalbody, dict(env))
            return False
        for field in ("test", "iter", "target", "value", "targets", "items", "msg"):
            sub = getattr(st, field, None)
            for node in (sub if isinstance(sub, list) else [sub]):
                node = getattr(node, "context_expr", node)
                if isinstance(node, ast.expr):
                    self.expr(node, env)
        for field in ("body", "orelse"):
            if isinstance(getattr(st, field, None), list):
                self.block(getattr(st, field), dict(env))
        return False

    def definition(self, node, env):
        if isinstance(node, ast.FunctionDef):
            for d in node.decorator_list + node.args.defaults:
                self.expr(d, env)
            self.block(node.body, dict(env))
            return
        base = None
        for b in node.bases:
            self.expr(b, env)
            base = base or (self.kind(b) if isinstance(b, ast.Attribute) else None)
        for st in node.body:
            if isinstance(st, ast.FunctionDef) and base and not _dunder(st.name):
                self.use(base, st.name, st)         # overrides a TensorRT method
            if isinstance(st, (ast.FunctionDef, ast.ClassDef)):
                self.definition(st, env)
            else:
                self.stmt(st, env)

    def module(self, tree):
        for st in tree.body:
            if isinstance(st, (ast.FunctionDef, ast.ClassDef)):
                if st.name not in self.dead:
                    self.definition(st, {})
            else:
                self.stmt(st, {})


def unpruned():
    w = Walker()
    for path, tree in SOURCES.items():
        w.where = path
        w.module(tree)
    return w


def walk(names):
    """The final Walker for ``names``: top-level definitions referenced only from code
    that does not run on this generation are dead, to a fixed point."""
    dead = set()
    defined = set(st.name for tree in SOURCES.values() for st in tree.body
                  if isinstance(st, (ast.FunctionDef, ast.ClassDef)))
    everywhere = unpruned()                 # every reference, whatever the generation
    while True:
        w = Walker(names, dead)
        for path, tree in SOURCES.items():
            w.where = path
            w.module(tree)
        now = set(d for d in defined if d in everywhere.refs and d not in w.refs)
        if now == dead:
            return w
        dead = now


def _release(version):
    return tuple(int(n) for n in re.findall(r"\d+", version)[:2])


def _claimed(key, version):
    since, until = OPTIONAL_API[key]
    rel = _release(version)
    return (since is None or rel >= since) and (until is None or rel < until)


def _split(dotted):
    cls, _, name = dotted.rpartition(".")
    return (cls or MODULE), name


def inferred(names, version="8.2"):
    """``names`` less every probed name OPTIONAL_API says ``version`` lacks."""
    out = {"module": set(names["module"]), "version": version + " (inferred)",
           "members": dict((k, set(v)) for k, v in names["members"].items())}
    for key in OPTIONAL_API:
        if not _claimed(key, version):
            cls, name = _split(key)
            (out["module"] if cls == MODULE else out["members"].setdefault(cls, set())) \
                .discard(name)
    return out


@pytest.fixture(scope="module")
def generations():
    out = {}
    for key in tb.GENERATIONS:
        names, reason = tb.load_names(key)
        if names is None:
            pytest.skip(reason)
        out[key] = names
    return out


def test_bindings_are_the_real_extension(generations):
    for key, names in generations.items():
        assert names["version"].startswith(key), (key, names["version"])
        assert len(names["members"]) > 150 and "ICudaEngine" in names["module"]


def _missing(names):
    w = walk(names)
    return w, sorted(set("{}.{} ({})".format(c, n, at) for c, n, at in w.uses
                         if not w.has(c, n)))


@pytest.mark.parametrize("key", list(tb.GENERATIONS) + ["8.2"])
def test_every_name_on_a_live_path_exists(generations, key):
    names = generations[key] if key in generations else inferred(generations["8.6"], key)
    w, missing = _missing(names)
    assert not missing, "TensorRT {} lacks what jetseg uses on its code path: {}".format(
        names["version"], "; ".join(missing))
    classes = set(c for c, _, _ in w.uses)
    assert {"ICudaEngine", "IExecutionContext", "IBuilderConfig", "Runtime"} <= classes


def test_the_generations_take_the_paths_the_code_documents(generations):
    """Which API each generation gets, read from the walk (not asserted by version)."""
    def used(names, dotted):
        cls, name = _split(dotted)
        return any((c, n) == (cls, name) for c, n, _ in walk(names).uses)
    eight_two = inferred(generations["8.6"])
    assert used(eight_two, "IExecutionContext.execute_async_v2")
    assert used(eight_two, "IBuilderConfig.max_workspace_size")
    for key, names in generations.items():
        assert used(names, "IExecutionContext.execute_async_v3"), key
        assert not used(names, "IExecutionContext.execute_async_v2"), key
        assert not used(names, "IBuilderConfig.max_workspace_size"), key
        assert used(names, "BuilderFlag.FP16") == (key != "11.4"), key
        assert used(names, "IProgressMonitor.phase_start") == (key != "8.6"), key


@pytest.mark.parametrize("key", list(tb.GENERATIONS))
def test_optional_api_claims_match_the_bindings(generations, key):
    names = generations[key]
    wrong = []
    for dotted in sorted(OPTIONAL_API):
        cls, name = _split(dotted)
        real = name in (names["module"] if cls == MODULE else names["members"].get(cls, ()))
        if real != _claimed(dotted, names["version"]):
            wrong.append("{} is {} in {}".format(dotted, "present" if real else "absent",
                                                 names["version"]))
    assert not wrong, "; ".join(wrong)


def test_optional_api_lists_exactly_the_probed_names():
    probed = set("{}.{}".format(c, n) if c != MODULE else n for c, n in unpruned().probes)
    assert probed - set(OPTIONAL_API) == set(), "probed but not in OPTIONAL_API"
    assert set(OPTIONAL_API) - probed == set(), "in OPTIONAL_API but never probed"


def test_every_role_of_the_naming_convention_is_used():
    assert len(ROLES) >= 10 and ROLES["trt"] == MODULE
    w = unpruned()
    assert set(ROLES.values()) <= set(c for c, _, _ in w.uses) | set(
        c for c, _ in w.probes), "a role of the convention is named but never used"
    assert {"jetseg/backends/tensorrt/build.py", "jetseg/backends/tensorrt/tensors.py",
            "jetseg/backends/selftest.py"} <= set(SOURCES)


def test_unreachable_index_is_a_reason_not_an_error(tmp_path, monkeypatch):
    for k in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE", "PIP_NO_INDEX"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    path, reason = tb.fetch_wheel("tensorrt-bindings==8.6.1", cache=str(tmp_path))
    assert path is None and "unreachable" in reason
