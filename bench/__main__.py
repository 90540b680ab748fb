"""`make bench`: lists the benchmarks and how to run each (they take minutes, so none starts unasked)."""

import importlib
import pkgutil

import bench

print("postbud benchmarks (run on demand; results are quoted in README.md):\n")
# chaos and e2e are benchmarks too (e2e_letters is only e2e's letters).
for module in sorted(m.name for m in pkgutil.iter_modules(bench.__path__)
                     if m.name.endswith("_bench") or m.name in ("chaos", "e2e")):
    doc = (importlib.import_module(f"bench.{module}").__doc__ or "").strip()
    print(f"bench/{module}.py\n    {doc.splitlines()[0] if doc else ''}")
    print(f"    .venv/bin/python -m bench.{module} --help\n")
