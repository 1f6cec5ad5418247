#!/usr/bin/env python3
"""Runs the Nextflow pipeline without Nextflow.

No Nextflow runtime can be installed here, so this interprets the small subset of Groovy the
pipeline uses:

- the configuration: params of nextflow.config, then of the profiles' config files (-profile
  test reads conf/test.config), then --param KEY=VALUE; process.shell is the shell of the tasks;
- main.nf: the entry workflow and the RCTD workflow are executed statement by statement, in
  main.nf's order (if/else, assignments, process and workflow calls, error), with the channel
  operators they use (channel.of/value/empty/fromList, map, flatMap, branch, first, mix,
  groupTuple, join, unique, collectFile) over Python lists, and nf-schema's validateParameters
  and samplesheetToList emulated against nextflow_schema.json and assets/schema_input.json
  (JSON Schema 2020-12 via python3-jsonschema, plus nf-schema's exists and uniqueEntries);
- each process of modules/local/NAME/main.nf is linted against nf-core's conventions and its
  meta.yml, and its script: (or stub:) block is evaluated as Nextflow would (the `def` lines,
  then the GString with ${...} and $name interpolation, then stripIndent); its inputs are
  staged by symbolic links into a task directory and the script runs with process.shell.

The merged results (RCTD.out h5ad, csv, json) are copied to WORK/results/SAMPLE/.

Usage: nf_scripts.py --pipeline DIR --bin DIR --work DIR [--profile test] [--param K=V ...]
                     [--cpus N] [--stub] [--lint-only]
Run in the launch directory (relative paths of params and the sample sheet are relative to it).
Exit status 0 when every task ran and produced its declared outputs; 1 with one line
"nf_scripts: ..." otherwise (a bad sample sheet: the row, the sample and the column).
"""
import argparse
import csv
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import jsonschema
import yaml


class PipelineError(Exception):
    pass


# ---------------------------------------------------------------- values
class Staged(list):
    """Staged input paths: rendered as Nextflow renders them (blank separated)."""

    def __str__(self):
        return " ".join(self)


class Chan:
    """A channel: its items, and whether it is a value channel (read by every task)."""

    def __init__(self, items, value=False):
        self.items = list(items)
        self.value = value


class Closure:
    def __init__(self, params, body, interp, scope):
        self.params, self.body, self.interp, self.scope = params, body, interp, scope

    def __call__(self, *args):
        if len(self.params) > 1 and len(args) == 1 and isinstance(args[0], list):
            args = tuple(args[0])  # a closure with N parameters spreads a list of N items
        if len(args) != len(self.params):
            raise PipelineError(f"closure {{ {', '.join(self.params)} -> ... }} got "
                                f"{len(args)} values; give every closure explicit parameters")
        scope = dict(self.scope)
        scope.update(zip(self.params, args))
        return self.interp.eval(self.body, scope)


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


# ---------------------------------------------------------------- expressions
TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>\d+)|(?P<id>[A-Za-z_]\w*)|(?P<sq>'(?:[^'\\]|\\.)*')"
    r"|(?P<dq>\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>\?:|==|!=|&&|\|\||->|\.\.|[?:().,!\[\]{}+]))")


def tokenize(text):
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise PipelineError(f"cannot parse Groovy expression at {text[pos:pos + 60]!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens, text


class ExprParser:
    """expr := or [ '?:' expr | '?' expr ':' expr ]; or/and/==/!=/+/!; a.b, a.m(args),
    a.m { closure }, f(args), [list], [map: x], (a..b), { params -> body }."""

    def __init__(self, text, scope, interp):
        self.tokens, self.text = tokenize(text)
        self.pos = 0
        self.scope = scope
        self.interp = interp

    def peek(self, ahead=0):
        i = self.pos + ahead
        return self.tokens[i][1] if i < len(self.tokens) else None

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
            raise PipelineError(f"trailing tokens in {self.text!r} at {self.peek()!r}")
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
        value = self.plus()
        if self.peek() in ("==", "!="):
            op = self.take()[1]
            rhs = self.plus()
            return (value == rhs) if op == "==" else (value != rhs)
        if self.peek() == "in":
            self.take()
            return value in self.plus()
        return value

    def plus(self):
        value = self.unary()
        while self.peek() == "+":
            self.take()
            rhs = self.unary()
            if isinstance(value, dict):
                value = {**value, **rhs}
            elif isinstance(value, list):
                value = value + rhs
            else:
                value = groovy_str(value) + groovy_str(rhs) if isinstance(value, str) else value + rhs
        return value

    def unary(self):
        if self.peek() == "!":
            self.take()
            return not groovy_truth(self.unary())
        return self.postfix()

    def args(self):
        """(positional, named) arguments up to the closing ')'."""
        positional, named = [], {}
        while self.peek() != ")":
            if self.tokens[self.pos][0] == "id" and self.peek(1) == ":":
                key = self.take()[1]
                self.take(":")
                named[key] = self.expr()
            else:
                positional.append(self.expr())
            if self.peek() == ",":
                self.take()
        self.take(")")
        return positional, named

    def postfix(self):
        value = self.primary()
        while self.peek() == ".":
            self.take()
            name = self.take()[1]
            if self.peek() == "(":
                self.take()
                positional, named = self.args()
                if self.peek() == "{":
                    positional.append(self.closure())
                value = self.interp.method(value, name, positional, named)
            elif self.peek() == "{":
                value = self.interp.method(value, name, [self.closure()], {})
            else:
                value = self.interp.prop(value, name)
        return value

    def closure(self):
        """{ a, b -> body }: the body's text is kept and evaluated when called."""
        start = self.tokens[self.pos][2]
        self.take("{")
        depth = 1
        while depth:
            tok = self.take()[1]
            depth += {"{": 1, "}": -1}.get(tok, 0)
        end = self.tokens[self.pos - 1][2]
        inner = self.text[start + 1:end]
        if "->" not in inner:
            raise PipelineError(f"closure without explicit parameters: {{{inner.strip()[:60]}}}")
        head, body = inner.split("->", 1)
        params = [p.strip() for p in head.split(",")]
        return Closure(params, body.strip(), self.interp, self.scope)

    def primary(self):
        kind, text, _ = self.take()
        if kind == "num":
            return int(text)
        if kind == "sq":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "dq":
            return interpolate(text[1:-1], self.scope, self.interp)
        if kind == "id":
            if text == "null":
                return None
            if text in ("true", "false"):
                return text == "true"
            if self.peek() == "(":
                self.take()
                positional, named = self.args()
                return self.interp.function(text, positional, named, self.scope)
            if text not in self.scope:
                raise PipelineError(f"unknown name '{text}' in {self.text!r}")
            return self.scope[text]
        if text == "(":
            value = self.expr()
            if self.peek() == "..":
                self.take()
                last = self.expr()
                value = list(range(int(value), int(last) + 1))
            self.take(")")
            return value
        if text == "[":
            if self.peek() == "]":
                self.take()
                return []
            if self.tokens[self.pos][0] == "id" and self.peek(1) == ":":
                mapping = {}
                while self.peek() != "]":
                    key = self.take()[1]
                    self.take(":")
                    mapping[key] = self.expr()
                    if self.peek() == ",":
                        self.take()
                self.take("]")
                return mapping
            items = []
            while self.peek() != "]":
                items.append(self.expr())
                if self.peek() == ",":
                    self.take()
            self.take("]")
            return items
        raise PipelineError(f"unexpected {text!r} in {self.text!r}")


def interpolate(body, scope, interp=None):
    """A GString body: \\x escapes, ${expr}, $name(.name)*; a lone $ is an error as in Groovy."""
    interp = interp or Interpreter.plain()
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
            out.append(groovy_str(interp.eval(body[i + 2:j - 1], scope)))
            i = j
            continue
        m = re.compile(r"\$([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)").match(body, i)
        if not m:
            raise PipelineError(f"lone '$' (escape it as \\$) at {body[i:i + 40]!r}")
        out.append(groovy_str(interp.eval(m.group(1), scope)))
        i = m.end()
    return "".join(out)


# ---------------------------------------------------------------- reading the modules
SECTION_RE = re.compile(r"^    (input|output|when|script|stub):\s*$")


class Process:
    def __init__(self, name, path, header, sections):
        self.name, self.path, self.header, self.sections = name, path, header, sections
        self.input_groups = parse_inputs(sections.get("input", []), self)
        self.inputs = [item for group in self.input_groups for item in group]
        self.outputs = parse_outputs(sections.get("output", []), self)

    def fail(self, what):
        raise PipelineError(f"{self.path}: process {self.name}: {what}")


def read_processes(module_dir):
    processes = {}
    paths = sorted(glob.glob(os.path.join(module_dir, "*", "main.nf")))
    if not paths:
        raise PipelineError(f"{module_dir}: no NAME/main.nf modules")
    for path in paths:
        lines = open(path).read().split("\n")
        starts = [i for i, l in enumerate(lines) if re.match(r"^process \w+ \{\s*$", l)]
        if len(starts) != 1:
            raise PipelineError(f"{path}: expected one process per module, found {len(starts)}")
        start = starts[0]
        name = re.match(r"^process (\w+)", lines[start]).group(1)
        if name.lower() != os.path.basename(os.path.dirname(path)):
            raise PipelineError(f"{path}: process {name} is not in modules/local/{name.lower()}/")
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
    """One group per input line: [(kind, name, stageAs)] (a tuple's elements in order)."""
    groups = []
    for line in (l.strip() for l in lines):
        if not line:
            continue
        group = [(m.group(1), m.group(2), m.group(3)) for m in re.finditer(
            r"\b(val|path)\s*\(?\s*(\w+)\s*(?:,\s*stageAs:\s*'([^']*)')?\s*\)?",
            line.replace("tuple ", ""))]
        if not group:
            proc.fail(f"input line without val or path: {line}")
        groups.append(group)
    if not groups:
        proc.fail("no inputs")
    return groups


def parse_outputs(lines, proc):
    """[(pattern, emit, optional, is_tuple)] of the path outputs."""
    outputs = []
    for line in (l.strip() for l in lines):
        if not line:
            continue
        m = re.search(r"path\s*\(?\s*\"([^\"]+)\"\s*\)?", line)
        e = re.search(r"emit:\s*(\w+)", line)
        if not m or not e:
            proc.fail(f"output line without path or emit: {line}")
        outputs.append((m.group(1), e.group(1), "optional: true" in line,
                        line.startswith("tuple")))
    return outputs


def lint(proc):
    """nf-core conventions every module must follow, and its meta.yml and environment.yml."""
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
    if ("versions.yml", "versions", False, False) not in proc.outputs:
        proc.fail("does not emit versions.yml as 'versions'")
    if proc.inputs[0][1] != "meta":
        proc.fail("first input is not the meta map")
    for block in ("script", "stub"):
        text = "\n".join(proc.sections[block])
        if "END_VERSIONS > versions.yml" not in text or '"${task.process}":' not in text:
            proc.fail(f"{block}: does not write versions.yml keyed by task.process")
    if "task.ext.args" not in "\n".join(proc.sections["script"]):
        proc.fail("script: ignores task.ext.args")
    module_dir = os.path.dirname(proc.path)
    env_path = os.path.join(module_dir, "environment.yml")
    env = yaml.safe_load(open(env_path)) if os.path.exists(env_path) else None
    if not isinstance(env, dict) or "dependencies" not in env or "channels" not in env:
        proc.fail("no environment.yml with channels and dependencies")
    meta_path = os.path.join(module_dir, "meta.yml")
    if not os.path.exists(meta_path):
        proc.fail("no meta.yml")
    meta = yaml.safe_load(open(meta_path))
    if meta.get("name") != proc.name.lower():
        proc.fail(f"meta.yml: name is {meta.get('name')!r}, not {proc.name.lower()!r}")
    for key in ("description", "keywords", "tools", "input", "output", "authors"):
        if not meta.get(key):
            proc.fail(f"meta.yml: no {key}")
    documented = []
    for entry in meta["input"]:
        for item in entry if isinstance(entry, list) else [entry]:
            documented += list(item)
    declared = [name for _, name, _ in proc.inputs]
    if documented != declared:
        proc.fail(f"meta.yml documents inputs {documented}, main.nf declares {declared}")
    emits = [emit for _, emit, _, _ in proc.outputs]
    if list(meta["output"]) != emits:
        proc.fail(f"meta.yml documents outputs {list(meta['output'])}, main.nf emits {emits}")


def render(proc, block, scope, interp):
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
        scope[m.group(1)] = interp.eval(m.group(2), scope)
    text = "\n".join(lines[i:])
    first = text.index('"""')
    last = text.rindex('"""')
    if first == last:
        proc.fail(f"{block}: no closing triple quote")
    if text[last + 3:].strip():
        proc.fail(f"{block}: text after the script string")
    body = text[first + 3:last]
    return textwrap.dedent(interpolate(body, scope, interp)).strip("\n") + "\n"


# ---------------------------------------------------------------- configuration
def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(^|\s)//.*$", r"\1", text, flags=re.M)


def block_of(text, opening):
    """The text inside the braces of the first line matching OPENING (a regex)."""
    m = re.search(opening + r"\s*\{", text, re.M)
    if not m:
        return None
    depth, i = 1, m.end()
    while depth and i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[m.end():i - 1]


def read_params(text, scope, interp):
    """NAME = EXPR lines of a params { } block, evaluated in order."""
    block = block_of(strip_comments(text), r"^params")
    params = {}
    for line in (block or "").split("\n"):
        m = re.match(r"^\s*(\w+)\s*=\s*(.+?)\s*$", line)
        if m:
            params[m.group(1)] = interp.eval(m.group(2), scope)
    return params


class Config:
    def __init__(self, pipeline, profiles, overrides, interp):
        text = open(os.path.join(pipeline, "nextflow.config")).read()
        self.text = text
        scope = {"projectDir": pipeline}
        self.params = read_params(text, scope, interp)
        self.declared = set(self.params)
        self.profile_files = []
        for profile in profiles:
            body = block_of(strip_comments(text), r"^    %s" % re.escape(profile))
            if body is None:
                raise PipelineError(f"nextflow.config has no profile '{profile}'")
            for inc in re.findall(r"includeConfig\s+'([^']+)'", body):
                path = os.path.join(pipeline, inc)
                self.profile_files.append(path)
                self.params.update(read_params(open(path).read(), scope, interp))
        for item in overrides:
            key, _, value = item.partition("=")
            if key not in self.declared:
                raise PipelineError(f"--param {key}: not a parameter of nextflow.config")
            old = self.params.get(key)
            self.params[key] = (int(value) if isinstance(old, int) and not isinstance(old, bool)
                                else (value.lower() == "true") if isinstance(old, bool) else value)
        m = re.search(r"^process\.shell\s*=\s*(\[.*?\])", text, re.M | re.S)
        if not m:
            raise PipelineError("nextflow.config sets no process.shell")
        self.shell = interp.eval(m.group(1), {})


# ---------------------------------------------------------------- nf-schema emulation
def schema_errors(instance, schema):
    validator = jsonschema.Draft202012Validator(schema)
    return sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))


def check_exists(value, prop):
    if prop.get("exists") and prop.get("format") in ("path", "file-path", "directory-path"):
        if not os.path.exists(value):
            return False
        if prop["format"] == "file-path" and not os.path.isfile(value):
            return False
        if prop["format"] == "directory-path" and not os.path.isdir(value):
            return False
    return True


def validate_parameters(params, pipeline):
    schema = json.load(open(os.path.join(pipeline, "nextflow_schema.json")))
    props = {k: p for g in schema["$defs"].values() for k, p in g["properties"].items()}
    instance = {k: v for k, v in params.items() if v is not None}
    for group in schema["$defs"].values():
        for key in group.get("required", []):
            if key not in instance:
                raise PipelineError(f"--{key} is required: {props[key]['description']}")
    flat = {"$schema": schema["$schema"], "type": "object", "properties": props}
    for error in schema_errors(instance, flat):
        key = error.path[0] if error.path else "?"
        raise PipelineError(f"--{key}: {error.message}")
    for key, value in instance.items():
        if isinstance(value, str) and value and not check_exists(value, props.get(key, {})):
            raise PipelineError(f"--{key}: '{value}' does not exist")


def samplesheet_to_list(path, schema_path):
    """nf-schema's samplesheetToList: one line per problem found first."""
    schema = json.load(open(schema_path))
    props = schema["items"]["properties"]
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        rows = list(reader)
    unknown = [c for c in header if c not in props]
    if unknown:
        raise PipelineError(f"{path}: column '{unknown[0]}' is not one of {', '.join(props)}")
    entries = []
    for row in rows:
        entry = {}
        for key, value in row.items():
            value = (value or "").strip()
            if value == "":
                continue
            if props[key].get("type") == "integer" and re.fullmatch(r"-?\d+", value):
                value = int(value)
            entry[key] = value
        entries.append(entry)
    for i, entry in enumerate(entries):
        where = f"{path}: row {i + 2}" + (f" (sample {entry['sample']})" if "sample" in entry else "")
        missing = [k for k in schema["items"].get("required", []) if k not in entry]
        if missing:
            raise PipelineError(f"{where}: {missing[0]} is missing (no such column, or empty)")
        for error in schema_errors(entry, schema["items"]):
            key = error.path[0] if error.path else "?"
            raise PipelineError(f"{where}: {props.get(key, {}).get('errorMessage', f'{key}: {error.message}')}")
        for key, value in entry.items():
            if isinstance(value, str) and not check_exists(value, props[key]):
                raise PipelineError(f"{where}: {key}: '{value}' does not exist")
    for key in schema.get("uniqueEntries", []):
        seen = {}
        for i, entry in enumerate(entries):
            value = entry.get(key)
            if value in seen:
                raise PipelineError(f"{path}: row {i + 2} ({key} {value}): {key} '{value}' is "
                                    f"given twice (also row {seen[value] + 2}); each once")
            seen[value] = i
    result = []
    for entry in entries:
        meta = {}
        rest = []
        for key, prop in props.items():
            if "meta" in prop:
                for meta_key in prop["meta"]:
                    meta[meta_key] = entry.get(key)
            elif key in entry:
                rest.append(os.path.abspath(entry[key]))
            else:
                rest.append([])
        result.append([meta] + rest)
    return result


# ---------------------------------------------------------------- main.nf
def split_statements(lines):
    """Statements of a block: a line continues the previous one while brackets are open or
    when it starts with '.', '?' or ':'."""
    statements, current, depth = [], "", 0
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if current and (depth > 0 or line[0] in ".?:"):
            current += "\n" + line
        else:
            if current:
                statements.append(current)
            current = line
        depth = count_depth(current)
    if current:
        statements.append(current)
    return statements


def matching(text, start):
    """Index of the bracket closing the one at START (quotes skipped)."""
    depth, quote = 0, None
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
    raise PipelineError(f"main.nf: unbalanced brackets in {text[start:start + 60]!r}")


def parse_if(st):
    """if (COND) { THEN } [else { OTHER }] -> (COND, THEN, OTHER)."""
    open_paren = st.index("(")
    close_paren = matching(st, open_paren)
    open_then = st.index("{", close_paren)
    close_then = matching(st, open_then)
    rest = st[close_then + 1:].strip()
    other = ""
    if rest:
        m = re.match(r"^else\s*\{", rest)
        if not m:
            raise PipelineError(f"main.nf: cannot read {rest[:60]!r} after an if block")
        close_else = matching(rest, m.end() - 1)
        if rest[close_else + 1:].strip():
            raise PipelineError(f"main.nf: text after an else block: {rest[close_else + 1:][:60]!r}")
        other = rest[m.end():close_else]
    return st[open_paren + 1:close_paren], st[open_then + 1:close_then], other


def count_depth(text):
    depth, quote = 0, None
    for c in text:
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        else:
            depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(c, 0)
    return depth


def workflow_sections(text, name):
    """take:, main: and emit: statements of `workflow NAME {` (name '' = the entry one)."""
    body = block_of(text, r"^workflow\s+%s" % re.escape(name) if name else r"^workflow")
    if body is None:
        raise PipelineError(f"main.nf has no workflow {name or '(entry)'}")
    sections, current = {"take": [], "main": [], "emit": []}, "main"
    for line in body.split("\n"):
        m = re.match(r"^\s*(take|main|emit):\s*$", line)
        if m:
            current = m.group(1)
        else:
            sections[current].append(line)
    return {k: split_statements(v) for k, v in sections.items()}


class Interpreter:
    def __init__(self, runner=None, pipeline=None, params=None):
        self.runner, self.pipeline, self.params = runner, pipeline, params or {}
        self.calls = []

    @staticmethod
    def plain():
        return Interpreter()

    def eval(self, text, scope):
        return ExprParser(text, scope, self).parse()

    # -- functions, properties and methods of the subset
    def function(self, name, positional, named, scope):
        if name == "file":
            path = os.path.abspath(positional[0])
            if named.get("checkIfExists") and not os.path.exists(path):
                raise PipelineError(f"file {positional[0]} does not exist")
            return path
        if name == "groupKey":
            return positional[0]
        if name == "samplesheetToList":
            return samplesheet_to_list(positional[0], positional[1])
        if name == "validateParameters":
            validate_parameters(self.params, self.pipeline)
            return None
        raise PipelineError(f"function '{name}' is not supported by this test")

    def prop(self, value, name):
        if isinstance(value, dict):
            if name not in value:
                raise PipelineError(f"no '{name}' in {sorted(value)}")
            return value[name]
        if isinstance(value, str) and name == "baseName":
            return os.path.splitext(os.path.basename(value))[0]
        if isinstance(value, str) and name == "text":
            return open(value).read()
        raise PipelineError(f"property '{name}' of {value!r}")

    def method(self, value, name, positional, named):
        if isinstance(value, Chan):
            return self.chan_method(value, name, positional, named)
        if isinstance(value, dict) and name in value and isinstance(value[name], Chan):
            raise PipelineError(f"'{name}' is a channel, not a method")
        simple = {
            "startsWith": lambda: str(value).startswith(positional[0]),
            "endsWith": lambda: str(value).endswith(positional[0]),
            "contains": lambda: positional[0] in value,
            "toString": lambda: groovy_str(value),
            "toAbsolutePath": lambda: os.path.abspath(value),
            "getGroupTarget": lambda: value,
            "collect": lambda: [positional[0](v) for v in value],
            "join": lambda: positional[0].join(groovy_str(v) for v in value),
        }
        if name == "empty" and value == "channel":
            return Chan([])
        if value == "channel":
            return self.chan_factory(name, positional)
        if name not in simple:
            raise PipelineError(f"method '{name}' is not supported by this test")
        return simple[name]()

    def chan_factory(self, name, positional):
        if name == "of":
            return Chan(positional)
        if name == "value":
            return Chan(positional, value=True)
        if name == "fromList":
            return Chan(positional[0])
        raise PipelineError(f"channel.{name} is not supported by this test")

    def chan_method(self, ch, name, positional, named):
        f = positional[0] if positional and isinstance(positional[0], Closure) else None
        if name == "map":
            return Chan([f(item) for item in ch.items], ch.value)
        if name == "flatMap":
            return Chan([out for item in ch.items for out in f(item)])
        if name == "first":
            return Chan(ch.items[:1], value=True)
        if name == "mix":
            return Chan(ch.items + [i for other in positional for i in other.items])
        if name == "unique":
            seen = []
            return Chan([i for i in ch.items if not (i in seen or seen.append(i))])
        if name == "groupTuple":
            groups = {}
            for key, *rest in ch.items:
                groups.setdefault(key, []).append(rest[0] if len(rest) == 1 else rest)
            return Chan([[key, files] for key, files in groups.items()])
        if name == "join":
            other = {item[0]: item[1:] for item in positional[0].items}
            return Chan([item + other[item[0]] for item in ch.items if item[0] in other])
        if name == "branch":
            return self.branch(ch, f)
        if name == "collectFile":
            path = os.path.join(named["storeDir"], named["name"])
            os.makedirs(named["storeDir"], exist_ok=True)
            with open(path, "w") as out:
                out.write("".join(sorted(ch.items) if named.get("sort") else ch.items))
            return Chan([path])
        raise PipelineError(f"channel operator '{name}' is not supported by this test")

    def branch(self, ch, f):
        """branch { a, b -> name: condition ... }: each item to the first true branch."""
        conditions = re.findall(r"(\w+)\s*:\s*(.+?)(?=\s+\w+\s*:|$)", f.body.strip(), re.S)
        out = {name: Chan([]) for name, _ in conditions}
        for item in ch.items:
            for name, cond in conditions:
                branch_fn = Closure(f.params, cond, self, f.scope)
                if groovy_truth(branch_fn(item)):
                    out[name].items.append(item)
                    break
        return out

    # -- statements
    def run_block(self, statements, scope, processes, workflows):
        i = 0
        while i < len(statements):
            st = statements[i]
            i += 1
            if re.match(r"^if\s*\(", st):
                cond, then, other = parse_if(st)
                branch = then if groovy_truth(self.eval(cond, scope)) else other
                self.run_block(split_statements(branch.split("\n")), scope, processes, workflows)
                continue
            m = re.match(r'^error\s+(".*")$', st, re.S)
            if m:
                raise PipelineError(self.eval(m.group(1), scope))
            m = re.match(r"^(?:def\s+)?(\w+)\s*=\s*(.+)$", st, re.S)
            if m and m.group(1) not in processes:
                scope[m.group(1)] = self.eval(m.group(2), scope)
                continue
            m = re.match(r"^(\w+)\((.*)\)$", st, re.S)
            if m and (m.group(1) in processes or m.group(1) in workflows):
                args = self.eval("[" + m.group(2) + "]", scope) if m.group(2).strip() else []
                name = m.group(1)
                if name in processes:
                    scope[name] = {"out": self.call_process(processes[name], args)}
                else:
                    scope[name] = {"out": self.call_workflow(name, args, scope, processes,
                                                             workflows)}
                continue
            # anything else is an expression statement (validateParameters(), channel chains)
            self.eval(st, scope)

    def call_workflow(self, name, args, scope, processes, workflows):
        sections = workflows[name]
        takes = [re.match(r"^(\w+)", t).group(1) for t in sections["take"]]
        if len(takes) != len(args):
            raise PipelineError(f"workflow {name} takes {len(takes)} inputs, given {len(args)}")
        inner = {k: v for k, v in scope.items() if k in ("params", "channel", "projectDir")}
        inner.update(zip(takes, args))
        self.run_block(sections["main"], inner, processes, workflows)
        emits = {}
        for st in sections["emit"]:
            key, _, expr = st.partition("=")
            emits[key.strip()] = self.eval(expr.strip(), inner)
        return emits

    def call_process(self, proc, args):
        """One task per item of the queue channel argument; value arguments go to every task."""
        if len(args) != len(proc.input_groups):
            proc.fail(f"called with {len(args)} arguments for {len(proc.input_groups)} inputs")
        queue = [a for a in args if isinstance(a, Chan) and not a.value]
        if len(queue) > 1:
            proc.fail("called with more than one queue channel (not emulated)")
        items = queue[0].items if queue else [None]
        self.calls.append((proc.name, len(items) if queue else 1))
        emits = {emit: Chan([]) for _, emit, _, _ in proc.outputs}
        for item in items:
            values = {}
            for group, arg in zip(proc.input_groups, args):
                if isinstance(arg, Chan):
                    value = item if not arg.value else (arg.items[0] if arg.items else None)
                    if arg.value and not arg.items:
                        return emits  # an empty value channel: no task
                else:
                    value = arg
                if len(group) > 1:
                    if not isinstance(value, list) or len(value) != len(group):
                        proc.fail(f"tuple input of {len(group)} elements given {value!r}")
                    values.update((name, v) for (_, name, _), v in zip(group, value))
                else:
                    values[group[0][1]] = value
            out = self.runner.run(proc, values)
            for emit, item_out in out.items():
                emits[emit].items.append(item_out)
        return emits


# ---------------------------------------------------------------- running tasks
class Runner:
    def __init__(self, args, config):
        self.args = args
        self.config = config
        self.work = os.path.abspath(args.work)
        self.n_tasks = 0
        self.env = dict(os.environ)
        self.env["PATH"] = os.path.abspath(args.bin) + os.pathsep + self.env.get("PATH", "")
        self.interp = Interpreter()

    def run(self, proc, values):
        """Runs PROC with input VALUES (name -> value; paths as absolute strings or lists).
        Returns {emit: item} with item [meta, path(s)] or path(s), as the outputs declare."""
        self.n_tasks += 1
        task_dir = os.path.join(self.work, f"{self.n_tasks:03d}-{proc.name}")
        os.makedirs(task_dir)
        scope, staged = {}, set()
        for kind, var, stage_as in proc.inputs:
            if var not in values:
                proc.fail(f"no value for input '{var}'")
            value = values[var]
            if kind == "val":
                scope[var] = value
                continue
            paths = value if isinstance(value, list) else [value]
            names = Staged()
            for path in paths:
                sub = os.path.dirname(stage_as) if stage_as else ""
                rel = os.path.join(sub, os.path.basename(path))
                if rel in staged:
                    proc.fail(f"two inputs staged as {rel}")
                os.makedirs(os.path.join(task_dir, sub), exist_ok=True)
                os.symlink(os.path.abspath(path), os.path.join(task_dir, rel))
                names.append(rel)
                staged.add(rel)
            scope[var] = names if isinstance(value, list) else names[0]
        scope["task"] = {
            "cpus": self.args.cpus,
            "process": f"RCTD:{proc.name}",
            "ext": {"args": None, "prefix": None, "when": None},
        }
        block = "stub" if self.args.stub else "script"
        script = render(proc, block, scope, self.interp)
        with open(os.path.join(task_dir, ".command.sh"), "w") as f:
            f.write("#!/bin/bash\n" + script)
        with open(os.path.join(task_dir, ".command.log"), "w") as log:
            rc = subprocess.call(self.config.shell + [".command.sh"], cwd=task_dir,
                                 env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if rc != 0:
            tail = open(os.path.join(task_dir, ".command.log")).read()[-2000:]
            raise PipelineError(f"{proc.name} ({task_dir}) exited with {rc}:\n{tail}")
        return self.collect(proc, task_dir, staged, scope)

    def collect(self, proc, task_dir, staged, scope):
        emitted = {}
        for pattern, emit, optional, is_tuple in proc.outputs:
            pattern = interpolate(pattern, scope, self.interp)
            found = sorted(
                p for p in glob.glob(os.path.join(task_dir, pattern))
                if os.path.relpath(p, task_dir) not in staged)
            if not found and not optional:
                proc.fail(f"declared output {pattern} ({emit}) was not written in {task_dir}")
            if not found:
                continue
            value = found[0] if len(found) == 1 else found
            emitted[emit] = [scope["meta"], value] if is_tuple else value
        self.check_versions(proc, emitted["versions"], scope)
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


def check_pipeline_files(pipeline, processes, config):
    """main.nf includes and calls every module in nf-core's style; the config and the schemas
    follow nf-core's current template."""
    main = open(os.path.join(pipeline, "main.nf")).read()
    code = strip_comments(main)
    for name, proc in processes.items():
        rel = "./modules/local/" + name.lower()
        if not re.search(r"include \{\s*%s\s*\} from '%s'" % (name, re.escape(rel)), main):
            raise PipelineError(f"main.nf does not include {name} from {rel}")
        if not re.search(r"\b%s\(" % name, code):
            raise PipelineError(f"main.nf never calls {name}")
    if re.search(r"\bChannel\.", code):
        raise PipelineError("main.nf: use channel. (lower case), not Channel.")
    for m in re.finditer(r"\{([^{}]*)\}", code):
        inner = m.group(1)
        if re.search(r"\bit\b", inner) and "->" not in inner:
            raise PipelineError(f"main.nf: closure with the implicit 'it': {{{inner.strip()[:60]}}}")
    configs = [os.path.join(pipeline, "nextflow.config")] + glob.glob(
        os.path.join(pipeline, "conf", "*.config"))
    for path in configs:
        if re.search(r"^\s*def\s", strip_comments(open(path).read()), re.M):
            raise PipelineError(f"{path}: a function (def) in a config file (strict syntax)")
    if "pipefail" not in config.shell:
        raise PipelineError("nextflow.config: process.shell has no pipefail")
    if not re.search(r"resourceLimits\s*=\s*\[", config.text):
        raise PipelineError("nextflow.config: no process.resourceLimits")
    for profile in ("local", "slurm", "test"):
        if not re.search(r"^    %s \{" % profile, config.text, re.M):
            raise PipelineError(f"nextflow.config has no '{profile}' profile")
    for name in ("CHANGELOG.md", "CITATIONS.md", "assets/schema_input.json"):
        if not os.path.exists(os.path.join(pipeline, name)):
            raise PipelineError(f"no {name}")
    if "10.1038/s41587-021-00830-w" not in open(os.path.join(pipeline, "CITATIONS.md")).read():
        raise PipelineError("CITATIONS.md does not cite spacexr's paper")
    schema = json.load(open(os.path.join(pipeline, "nextflow_schema.json")))
    if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema" or "$defs" not in schema:
        raise PipelineError("nextflow_schema.json is not JSON Schema draft 2020-12 with $defs")
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator.check_schema(
        json.load(open(os.path.join(pipeline, "assets", "schema_input.json"))))
    documented = set()
    for group in schema["$defs"].values():
        for key, prop in group["properties"].items():
            if not prop.get("description"):
                raise PipelineError(f"nextflow_schema.json: {key} has no description")
            documented.add(key)
    if config.declared != documented:
        raise PipelineError("params of nextflow.config and nextflow_schema.json differ: "
                            f"undocumented {sorted(config.declared - documented)}, "
                            f"not in the config {sorted(documented - config.declared)}")
    used = set(re.findall(r"params\.(\w+)", main + config.text +
                          open(os.path.join(pipeline, "conf", "modules.config")).read()))
    if used - config.declared:
        raise PipelineError(f"params used but not declared: {sorted(used - config.declared)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--profile", default="", help="comma-separated, e.g. test")
    parser.add_argument("--param", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--stub", action="store_true", help="run the stub: blocks instead")
    parser.add_argument("--lint-only", action="store_true", help="check, run nothing")
    args = parser.parse_args()
    pipeline = os.path.abspath(args.pipeline)
    try:
        config = Config(pipeline, [p for p in args.profile.split(",") if p], args.param,
                        Interpreter())
        processes = read_processes(os.path.join(pipeline, "modules", "local"))
        for proc in processes.values():
            lint(proc)
        check_pipeline_files(pipeline, processes, config)
        if args.lint_only:
            print(f"nf_scripts: {len(processes)} processes checked")
            return 0
        text = strip_comments(open(os.path.join(pipeline, "main.nf")).read())
        workflows = {name: workflow_sections(text, name)
                     for name in re.findall(r"^workflow (\w+) \{", text, re.M)}
        entry = workflow_sections(text, "")
        runner = Runner(args, config)
        interp = Interpreter(runner, pipeline, config.params)
        runner.interp = interp
        scope = {"params": config.params, "channel": "channel", "projectDir": pipeline}
        interp.run_block(entry["main"], scope, processes, workflows)
        publish(scope, args.work)
    except (PipelineError, OSError, subprocess.CalledProcessError, yaml.YAMLError,
            jsonschema.SchemaError) as e:
        print(f"nf_scripts: {e}", file=sys.stderr)
        return 1
    order = " ".join(f"{name}x{n}" for name, n in interp.calls)
    print(f"nf_scripts: {len(processes)} processes checked, {runner.n_tasks} tasks "
          f"({'stub' if args.stub else 'script'}) ran in main.nf's order: {order}")
    return 0


def publish(scope, work):
    """RCTD.out's h5ad, csv and json to WORK/results/SAMPLE/ (RCTD_MERGE's publishDir)."""
    outputs = scope["RCTD"]["out"]
    for emit in ("h5ad", "csv", "json"):
        for meta, path in outputs[emit].items:
            dest_dir = os.path.join(work, "results", meta["id"])
            os.makedirs(dest_dir, exist_ok=True)
            dest = os.path.join(dest_dir, os.path.basename(path))
            if os.path.isdir(path):
                shutil.copytree(path, dest)
            else:
                shutil.copyfile(path, dest)


if __name__ == "__main__":
    sys.exit(main())
