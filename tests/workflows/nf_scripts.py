#!/usr/bin/env python3
"""Runs the Nextflow pipeline's process scripts without Nextflow.

No Nextflow runtime can be installed here, so this reads every process of
workflows/nextflow/modules/*.nf, checks its nf-core conventions (tag, label, versions.yml
output, when:, stub:), evaluates the script: (or stub:) block as Nextflow would (the `def`
lines, then the GString with ${...} and $name interpolation, then stripIndent), stages the
inputs by symbolic links into a task directory and runs the commands with bash, in the order
main.nf's channels give: reference once, then per sample normalize, sigma, the fit shards and
merge.  The merged outputs are copied to OUT/results/SAMPLE/ for comparison.

Usage: nf_scripts.py --pipeline DIR --bin DIR --work DIR --reference REF
                     --sample ID:SPATIAL:MODE:SHARDS:CHUNK_PIXELS [--sample ...]
                     [--cache-dir DIR] [--formats h5ad,csv] [--cpus N] [--stub]
Exit status 0 when every task ran and produced its declared outputs.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import yaml


class PipelineError(Exception):
    pass


# ---------------------------------------------------------------- a small Groovy subset
class Staged(list):
    """Staged input paths: rendered as Nextflow renders them (blank separated)."""

    def __str__(self):
        return " ".join(self)


def groovy_str(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def groovy_truth(value):
    return value not in (None, "", 0, False) and not (isinstance(value, (list, dict)) and not value)


TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>\d+)|(?P<id>[A-Za-z_]\w*)|(?P<sq>'(?:[^'\\]|\\.)*')"
    r"|(?P<dq>\"(?:[^\"\\]|\\.)*\")|(?P<op>\?:|==|!=|&&|\|\||[?:().,!]))")


def tokenize(text):
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise PipelineError(f"cannot parse Groovy expression at {text[pos:]!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class ExprParser:
    """expr := or [ '?:' expr | '?' expr ':' expr ]; or/and/==/!=/!, a.b, a.m(args)."""

    def __init__(self, text, scope):
        self.tokens = tokenize(text)
        self.pos = 0
        self.scope = scope
        self.text = text

    def peek(self):
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected=None):
        if self.pos >= len(self.tokens):
            raise PipelineError(f"unexpected end of expression {self.text!r}")
        tok = self.tokens[self.pos]
        if expected is not None and tok[1] != expected:
            raise PipelineError(f"expected {expected!r} in {self.text!r}, got {tok[1]!r}")
        self.pos += 1
        return tok

    def parse(self):
        value = self.expr()
        if self.pos != len(self.tokens):
            raise PipelineError(f"trailing tokens in {self.text!r}")
        return value

    def expr(self):
        cond = self.or_expr()
        if self.peek() == "?:":
            self.take()
            other = self.expr()
            return cond if groovy_truth(cond) else other
        if self.peek() == "?":
            self.take()
            yes = self.expr()
            self.take(":")
            no = self.expr()
            return yes if groovy_truth(cond) else no
        return cond

    def or_expr(self):
        value = self.and_expr()
        while self.peek() == "||":
            self.take()
            rhs = self.and_expr()
            value = groovy_truth(value) or groovy_truth(rhs)
        return value

    def and_expr(self):
        value = self.cmp()
        while self.peek() == "&&":
            self.take()
            rhs = self.cmp()
            value = groovy_truth(value) and groovy_truth(rhs)
        return value

    def cmp(self):
        value = self.unary()
        if self.peek() in ("==", "!="):
            op = self.take()[1]
            rhs = self.unary()
            return (value == rhs) if op == "==" else (value != rhs)
        return value

    def unary(self):
        if self.peek() == "!":
            self.take()
            return not groovy_truth(self.unary())
        return self.postfix()

    def postfix(self):
        value = self.primary()
        while self.peek() == ".":
            self.take()
            name = self.take()[1]
            if self.peek() == "(":
                self.take()
                args = []
                while self.peek() != ")":
                    args.append(self.expr())
                    if self.peek() == ",":
                        self.take()
                self.take(")")
                value = call_method(value, name, args)
            else:
                value = get_property(value, name)
        return value

    def primary(self):
        kind, text = self.take()
        if kind == "num":
            return int(text)
        if kind == "sq":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "dq":
            return interpolate(text[1:-1], self.scope)
        if kind == "id":
            if text == "null":
                return None
            if text in ("true", "false"):
                return text == "true"
            if text not in self.scope:
                raise PipelineError(f"unknown name '{text}' in {self.text!r}")
            return self.scope[text]
        if text == "(":
            value = self.expr()
            self.take(")")
            return value
        raise PipelineError(f"unexpected {text!r} in {self.text!r}")


def get_property(value, name):
    if isinstance(value, dict):
        return value.get(name)
    raise PipelineError(f"property '{name}' of {value!r}")


def call_method(value, name, args):
    methods = {
        "startsWith": lambda: str(value).startswith(args[0]),
        "endsWith": lambda: str(value).endswith(args[0]),
        "contains": lambda: args[0] in value,
        "toString": lambda: groovy_str(value),
    }
    if name not in methods:
        raise PipelineError(f"method '{name}' is not supported by this test")
    return methods[name]()


def evaluate(text, scope):
    return ExprParser(text, scope).parse()


def interpolate(body, scope):
    """A GString body: \\x escapes, ${expr}, $name(.name)*; a lone $ is an error as in Groovy."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            # A backslash before a newline joins the lines, as in Groovy.
            out.append({"n": "\n", "t": "\t", "\n": ""}.get(nxt, nxt))
            i += 2
            continue
        if c != "$":
            out.append(c)
            i += 1
            continue
        if body.startswith("${", i):
            depth, j = 1, i + 2
            while j < len(body) and depth:
                depth += {"{": 1, "}": -1}.get(body[j], 0)
                j += 1
            if depth:
                raise PipelineError(f"unclosed ${{ in {body[i:i + 40]!r}")
            out.append(groovy_str(evaluate(body[i + 2:j - 1], scope)))
            i = j
            continue
        m = re.compile(r"\$([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)").match(body, i)
        if not m:
            raise PipelineError(f"lone '$' (escape it as \\$) at {body[i:i + 40]!r}")
        out.append(groovy_str(evaluate(m.group(1), scope)))
        i = m.end()
    return "".join(out)


# ---------------------------------------------------------------- reading the modules
SECTION_RE = re.compile(r"^    (input|output|when|script|stub):\s*$")


class Process:
    def __init__(self, name, path, header, sections):
        self.name, self.path, self.header, self.sections = name, path, header, sections
        self.inputs = parse_inputs(sections.get("input", []), self)
        self.outputs = parse_outputs(sections.get("output", []), self)

    def fail(self, what):
        raise PipelineError(f"{self.path}: process {self.name}: {what}")


def read_processes(module_dir):
    processes = {}
    for path in sorted(glob.glob(os.path.join(module_dir, "*.nf"))):
        lines = open(path).read().split("\n")
        starts = [i for i, l in enumerate(lines) if re.match(r"^process \w+ \{\s*$", l)]
        if len(starts) != 1:
            raise PipelineError(f"{path}: expected one process per module, found {len(starts)}")
        start = starts[0]
        name = re.match(r"^process (\w+)", lines[start]).group(1)
        end = next((i for i in range(start + 1, len(lines)) if lines[i] == "}"), None)
        if end is None:
            raise PipelineError(f"{path}: process {name} has no closing brace at column 0")
        header, sections, current = [], {}, None
        for line in lines[start + 1:end]:
            m = SECTION_RE.match(line)
            if m:
                current = m.group(1)
                if current in sections:
                    raise PipelineError(f"{path}: {name}: two {current}: sections")
                sections[current] = []
            elif current is None:
                header.append(line)
            else:
                sections[current].append(line)
        processes[name] = Process(name, path, header, sections)
    return processes


def parse_inputs(lines, proc):
    """[(kind, name, stageAs)] in order; a tuple's elements are flattened."""
    inputs = []
    for line in (l.strip() for l in lines):
        if not line:
            continue
        for m in re.finditer(r"\b(val|path)\s*\(?\s*(\w+)\s*(?:,\s*stageAs:\s*'([^']*)')?\s*\)?",
                             line.replace("tuple ", "")):
            inputs.append((m.group(1), m.group(2), m.group(3)))
    if not inputs:
        proc.fail("no inputs")
    return inputs


def parse_outputs(lines, proc):
    """[(pattern, emit, optional)] of the path outputs."""
    outputs = []
    for line in (l.strip() for l in lines):
        if not line:
            continue
        m = re.search(r"path\s*\(?\s*\"([^\"]+)\"\s*\)?", line)
        e = re.search(r"emit:\s*(\w+)", line)
        if not m or not e:
            proc.fail(f"output line without path or emit: {line}")
        outputs.append((m.group(1), e.group(1), "optional: true" in line))
    return outputs


def lint(proc):
    """nf-core conventions every module must follow."""
    header = "\n".join(proc.header)
    if not re.search(r"^\s+tag\s+\"[^\"]*meta\.id", header, re.M):
        proc.fail("no tag with the sample id (tag \"$meta.id\")")
    if not re.search(r"^\s+label\s+'process_(single|low|medium|high)'", header, re.M):
        proc.fail("no process_single/low/medium/high label")
    for section in ("input", "output", "when", "script", "stub"):
        if section not in proc.sections:
            proc.fail(f"no {section}: block")
    if "task.ext.when == null || task.ext.when" not in "\n".join(proc.sections["when"]):
        proc.fail("when: is not nf-core's task.ext.when test")
    if ("versions.yml", "versions", False) not in proc.outputs:
        proc.fail("does not emit versions.yml as 'versions'")
    if proc.inputs[0][1] != "meta":
        proc.fail("first input is not the meta map")
    for block in ("script", "stub"):
        text = "\n".join(proc.sections[block])
        if "END_VERSIONS > versions.yml" not in text or '"${task.process}":' not in text:
            proc.fail(f"{block}: does not write versions.yml keyed by task.process")
    if "task.ext.args" not in "\n".join(proc.sections["script"]):
        proc.fail("script: ignores task.ext.args")


def render(proc, block, scope):
    """The bash script of a script:/stub: block: def lines evaluated, then the GString."""
    lines = proc.sections[block]
    scope = dict(scope)
    i = 0
    while i < len(lines) and '"""' not in lines[i]:
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("//"):
            continue
        m = re.match(r"^def\s+(\w+)\s*=\s*(.+)$", line)
        if not m:
            proc.fail(f"{block}: unsupported statement before the script: {line}")
        scope[m.group(1)] = evaluate(m.group(2), scope)
    text = "\n".join(lines[i:])
    first = text.index('"""')
    last = text.rindex('"""')
    if first == last:
        proc.fail(f"{block}: no closing triple quote")
    if text[last + 3:].strip():
        proc.fail(f"{block}: text after the script string")
    body = text[first + 3:last]
    return textwrap.dedent(interpolate(body, scope)).strip("\n") + "\n"


# ---------------------------------------------------------------- running tasks
class Runner:
    def __init__(self, args, processes):
        self.args = args
        self.processes = processes
        self.work = os.path.abspath(args.work)
        self.n_tasks = 0
        self.env = dict(os.environ)
        self.env["PATH"] = os.path.abspath(args.bin) + os.pathsep + self.env.get("PATH", "")

    def run(self, name, values):
        """Runs process NAME with input VALUES (name -> value; paths as absolute strings or
        lists).  Returns {emit: [paths]} of the declared outputs."""
        proc = self.processes[name]
        self.n_tasks += 1
        task_dir = os.path.join(self.work, f"{self.n_tasks:03d}-{name}")
        os.makedirs(task_dir)
        scope, staged = {}, set()
        for kind, var, stage_as in proc.inputs:
            if var not in values:
                proc.fail(f"test gave no value for input '{var}'")
            value = values[var]
            if kind == "val":
                scope[var] = value
                continue
            paths = value if isinstance(value, list) else [value]
            names = Staged()
            for path in paths:
                sub = os.path.dirname(stage_as) if stage_as else ""
                rel = os.path.join(sub, os.path.basename(path))
                os.makedirs(os.path.join(task_dir, sub), exist_ok=True)
                os.symlink(os.path.abspath(path), os.path.join(task_dir, rel))
                names.append(rel)
                staged.add(rel)
            scope[var] = names if isinstance(value, list) else names[0]
        scope["task"] = {
            "cpus": self.args.cpus,
            "process": f"RCTD:{name}",
            "ext": {"args": None, "prefix": None, "when": None},
        }
        block = "stub" if self.args.stub else "script"
        script = render(proc, block, scope)
        with open(os.path.join(task_dir, ".command.sh"), "w") as f:
            f.write("#!/bin/bash -ue\n" + script)
        with open(os.path.join(task_dir, ".command.log"), "w") as log:
            rc = subprocess.call(["bash", "-ue", ".command.sh"], cwd=task_dir, env=self.env,
                                 stdout=log, stderr=subprocess.STDOUT)
        if rc != 0:
            tail = open(os.path.join(task_dir, ".command.log")).read()[-2000:]
            raise PipelineError(f"{name} ({task_dir}) exited with {rc}:\n{tail}")
        return self.collect(proc, task_dir, staged, scope)

    def collect(self, proc, task_dir, staged, scope):
        emitted = {}
        for pattern, emit, optional in proc.outputs:
            pattern = interpolate(pattern, scope)
            found = sorted(
                p for p in glob.glob(os.path.join(task_dir, pattern))
                if os.path.relpath(p, task_dir) not in staged)
            if not found and not optional:
                proc.fail(f"declared output {pattern} ({emit}) was not written in {task_dir}")
            emitted[emit] = found
        self.check_versions(proc, emitted["versions"][0], scope)
        return emitted

    def check_versions(self, proc, path, scope):
        data = yaml.safe_load(open(path))
        key = scope["task"]["process"]
        if not isinstance(data, dict) or list(data) != [key]:
            proc.fail(f"versions.yml is not keyed by '{key}': {data!r}")
        tools = data[key]
        if not isinstance(tools, dict) or not tools:
            proc.fail(f"versions.yml lists no tool: {data!r}")
        for tool, version in tools.items():
            out = subprocess.run([os.path.join(self.args.bin, tool), "--version"],
                                 capture_output=True, text=True, check=True).stdout.split()
            if str(version) != out[-1]:
                proc.fail(f"versions.yml says {tool} {version}, the tool says {out[-1]}")


def run_pipeline(args, processes):
    """main.nf's data flow for the given samples, one task at a time."""
    runner = Runner(args, processes)
    fit_process = {"full": "RCTD_FIT_FULL", "doublet": "RCTD_FIT_DOUBLET",
                   "multi": "RCTD_FIT_MULTI"}
    ref_id = os.path.splitext(os.path.basename(args.reference))[0]
    ref = runner.run("RCTD_REFERENCE", {"meta": {"id": ref_id}, "reference": args.reference})
    ref_stream = ref["stream"][0]
    for spec in args.sample:
        sid, spatial, mode, shards, chunk = spec.split(":")
        meta = {"id": sid, "mode": mode, "shards": int(shards), "chunk_pixels": int(chunk)}
        model = runner.run("RCTD_NORMALIZE",
                           {"meta": meta, "spatial": spatial, "reference": ref_stream})["model"][0]
        sigma = runner.run("RCTD_SIGMA", {"meta": meta, "model": model,
                                          "cache_dir": args.cache_dir})["model"][0]
        shard_files = []
        # Shards finish in any order on a cluster: run them backwards to show it does not matter.
        for i in range(meta["shards"], 0, -1):
            out = runner.run(fit_process[mode], {"meta": dict(meta, shard=i), "model": sigma,
                                                 "cache_dir": args.cache_dir})
            shard_files += out["shard"]
        merged = runner.run("RCTD_MERGE", {"meta": meta, "shards": shard_files,
                                           "spatial": spatial, "formats": args.formats})
        publish = os.path.join(args.work, "results", sid)
        os.makedirs(publish)
        for emit in ("h5ad", "csv", "json"):
            for path in merged[emit]:
                dest = os.path.join(publish, os.path.basename(path))
                if os.path.isdir(path):
                    shutil.copytree(path, dest)
                else:
                    shutil.copyfile(path, dest)
    return runner.n_tasks


def check_pipeline_files(pipeline, processes):
    """main.nf includes and calls every module; the schema documents exactly the params."""
    main = open(os.path.join(pipeline, "main.nf")).read()
    for name, proc in processes.items():
        rel = "./modules/" + os.path.splitext(os.path.basename(proc.path))[0]
        if not re.search(r"include \{\s*%s\s*\} from '%s'" % (name, re.escape(rel)), main):
            raise PipelineError(f"main.nf does not include {name} from {rel}")
        if not re.search(r"\b%s\(" % name, main):
            raise PipelineError(f"main.nf never calls {name}")
    config = open(os.path.join(pipeline, "nextflow.config")).read()
    block = re.search(r"^params \{\n(.*?)^\}", config, re.M | re.S)
    if not block:
        raise PipelineError("nextflow.config has no params block")
    params = set(re.findall(r"^\s+(\w+)\s*=", block.group(1), re.M))
    for profile in ("local", "slurm"):
        if not re.search(r"^    %s \{" % profile, config, re.M):
            raise PipelineError(f"nextflow.config has no '{profile}' profile")
    schema = json.load(open(os.path.join(pipeline, "nextflow_schema.json")))
    documented = set()
    for group in schema["definitions"].values():
        for key, prop in group["properties"].items():
            if not prop.get("description"):
                raise PipelineError(f"nextflow_schema.json: {key} has no description")
            documented.add(key)
    if params != documented:
        raise PipelineError("params of nextflow.config and nextflow_schema.json differ: "
                            f"undocumented {sorted(params - documented)}, "
                            f"not in the config {sorted(documented - params)}")
    used = set(re.findall(r"params\.(\w+)", main + config +
                          open(os.path.join(pipeline, "conf", "modules.config")).read()))
    if used - params:
        raise PipelineError(f"params used but not declared: {sorted(used - params)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--sample", action="append", required=True,
                        help="ID:SPATIAL:MODE:SHARDS:CHUNK_PIXELS")
    parser.add_argument("--cache-dir", default="")
    parser.add_argument("--formats", default="h5ad")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--stub", action="store_true", help="run the stub: blocks instead")
    args = parser.parse_args()
    try:
        processes = read_processes(os.path.join(args.pipeline, "modules"))
        for proc in processes.values():
            lint(proc)
        check_pipeline_files(args.pipeline, processes)
        n = run_pipeline(args, processes)
    except (PipelineError, OSError, subprocess.CalledProcessError, yaml.YAMLError) as e:
        print(f"nf_scripts: {e}", file=sys.stderr)
        return 1
    print(f"nf_scripts: {len(processes)} processes checked, {n} tasks "
          f"({'stub' if args.stub else 'script'}) ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
