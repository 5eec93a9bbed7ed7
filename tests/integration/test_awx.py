# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWX job templates of extensions/awx, checked as AWX would check them and run as AWX runs them.

(a) Every survey is valid by AWX's own rules, re-implemented here from the AWX sources because
    no controller is reachable from the test machines: ``JobTemplateSurveySpec._validate_spec_data``
    (awx/api/views/__init__.py: name/description/spec present, every question has ``type``,
    ``question_name``, ``variable`` strings and a ``required`` boolean, no variable twice, ``type``
    one of text/textarea/password/integer/float/multiplechoice/multiselect, a default of the
    question's type, integer ``min``/``max``, ``choices`` for choice questions and defaults among
    them) and ``SurveyJobTemplateMixin._survey_element_validation`` (awx/main/models/mixins.py: the
    check a default must pass, or AWX silently drops it at launch).  On top of that, hostfw's own
    rules: a survey variable is a valid Ansible identifier, not a reserved name, not a connection
    (``ansible_*``) or AWX (``awx_*``, ``tower_*``) variable, not the name of an AWX launch prompt
    (``limit`` ...), never a policy variable, and one of the operational switches the playbooks
    document.

(b) Each template's playbook runs under ``ansible_runner.run()``, AWX's own engine, with the
    command line AWX builds from the template (``--check`` for job_type check, ``--diff``,
    ``--become``, ``--limit``) and the extra vars its survey defaults produce:

    * render and matrix: against examples/two-node-cluster, and against a copy of its inventory
      in another directory (as AWX writes inventories to /runner/inventory) that finds the
      manifests through ``{{ playbook_dir }}``; the output directory is a survey answer (a
      temporary directory), not the default /tmp/hostfw-render;
    * plan: a host without a HostEndpoint (ends with "nothing to roll out"); a host whose table
      inet hostfw differs from the candidate (diff shown, nothing changed); a host without any
      table yet (the plan says it would change and changes nothing);
    * apply: a first rollout (stage, arm, apply, confirm over a new connection) and a second,
      idempotent one.

(c) extensions/awx/configure.yml hands every template key to awx.awx.job_template, whose options
    accept them, and takes the controller from CONTROLLER_* (run against a closed local port: no
    controller is reachable here).

    The hosts are ``ansible_connection: local`` and their modules run, through an
    ``ansible_python_interpreter`` wrapper, inside a private network namespace (``ip netns``), so
    no firewall of the machine running the tests is read or changed; become uses ``su`` (root to
    root).  Needs root, ip, nft, unshare and su.  The apply test also needs a machine where systemd is not PID 1 (the rollback is then
    a detached process inside the namespace; a systemd timer would act on the machine's own
    namespace), and runs with hostfw_persist false (persisting writes /etc/hostfw and enables
    hostfw.service on the machine itself).
"""

from __future__ import annotations

import ast
import copy
import glob
import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import uuid

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".collections")
AWX_DIR = os.path.join(ROOT, "extensions", "awx")
TEMPLATES_FILE = os.path.join(AWX_DIR, "job_templates.yml")
CONFIGURE_FILE = os.path.join(AWX_DIR, "configure.yml")
EXAMPLE = os.path.join(ROOT, "examples", "two-node-cluster")
ROLE_SPECS = os.path.join(ROOT, "roles", "rollout", "meta", "argument_specs.yml")

# --------------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------------


def load_templates():
    with open(TEMPLATES_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)["hostfw_awx_job_templates"]


TEMPLATES = load_templates()


WORKFLOWS_FILE = os.path.join(AWX_DIR, "workflow_templates.yml")
FROM_RENDER = "hostfw apply from render"  # the second node of the render-once workflow


def load_workflows():
    with open(WORKFLOWS_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)["hostfw_awx_workflow_templates"]


WORKFLOWS = load_workflows()


def by_name(name):
    found = [t for t in TEMPLATES if t["name"] == name]
    assert len(found) == 1, name
    return found[0]


def template(playbook, job_type):
    """The one stand-alone template of ``playbook`` and ``job_type`` (not the workflow's rollout node)."""
    found = [t for t in TEMPLATES if t["playbook"] == playbook and t["job_type"] == job_type and t["name"] != FROM_RENDER]
    assert len(found) == 1, "expected one %s template for %s, found %d" % (job_type, playbook, len(found))
    return found[0]


# --------------------------------------------------------------------------------------------
# AWX's rules
# --------------------------------------------------------------------------------------------

# JobTemplateSurveySpec.ALLOWED_TYPES
AWX_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
             "integer": int, "float": float}

# Variables a survey must never set: everything hostfw reads as policy or as a per-host input to
# the compiler (plugins/plugin_utils/sources.py HOST_VARS), plus the rollout's test hooks and
# safety switches that only an inventory owner may change.
POLICY_VARIABLES = frozenset((
    "hostfw_resources", "hostfw_manifests", "hostfw_host_endpoints", "hostfw_node_name",
    "hostfw_auto_host_endpoint", "hostfw_host_ips", "hostfw_labels", "hostfw_interfaces",
    "hostfw_matrix_probes", "hostfw_protected_ports", "hostfw_candidate_ruleset",
    "hostfw_candidate_failsafe_proof", "hostfw_verify_management_access", "hostfw_state_dir",
    "hostfw_persist", "hostfw_packages", "hostfw_install_packages", "hostfw_candidate_dir", "hostfw_candidate_digest"))

# The operational switches surveys may offer (documented in roles/rollout/meta/argument_specs.yml,
# hostfw_output_dir also in playbooks/render.yml).
OPERATIONAL_VARIABLES = frozenset(("hostfw_hosts", "hostfw_serial", "hostfw_rollback_timeout",
                                   "hostfw_reconnect_timeout", "hostfw_output_dir"))

# Names of AWX launch prompts and job fields: as a survey variable each would be a plain extra
# var that does not do what its name says (the limit is ask_limit_on_launch, passed as --limit).
AWX_PROMPT_NAMES = frozenset(("limit", "inventory", "credential", "credentials", "job_type", "job_tags",
                              "skip_tags", "verbosity", "diff_mode", "forks", "timeout", "scm_branch",
                              "execution_environment", "instance_groups", "labels", "job_slice_count"))


def awx_spec_errors(survey):
    """The errors AWX's API returns when this survey is POSTed (first error per question, as AWX
    stops at the first one)."""
    errors = []
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if field not in survey:
            errors.append("Field '%s' is missing from survey spec." % field)
        elif not isinstance(survey[field], kind):
            errors.append("Expected %s for field '%s'." % (kind.__name__, field))
    if isinstance(survey.get("spec"), list) and not survey["spec"]:
        errors.append("'spec' doesn't contain any items.")
    if errors:
        return errors
    seen = set()
    for idx, item in enumerate(survey["spec"]):
        error = _awx_item_error(idx, item, seen)
        if error:
            errors.append(error)
    return errors


def _awx_item_error(idx, item, seen):
    if not isinstance(item, dict):
        return "Survey question %d is not a json object." % idx
    for field in ("type", "question_name", "variable", "required"):
        if field not in item:
            return "'%s' missing from survey question %d" % (field, idx)
        kind = bool if field == "required" else str
        if not isinstance(item[field], kind):
            return "'%s' in survey question %d expected to be %s." % (field, idx, kind.__name__)
    if item["variable"] in seen:
        return "'variable' '%s' duplicated in survey question %d." % (item["variable"], idx)
    seen.add(item["variable"])
    qtype = item["type"]
    if qtype not in AWX_TYPES:
        return "'%s' in survey question %d is not one of the allowed question types." % (qtype, idx)
    if "default" in item and item["default"] != "":
        if not isinstance(item["default"], AWX_TYPES[qtype]):
            return "Default value %r in survey question %d expected to be %s." % (item["default"], idx, qtype)
    for key in ("min", "max"):
        if key in item and item[key] is not None and not isinstance(item[key], int):
            return "The %s limit in survey question %d expected to be integer." % (key, idx)
    if qtype in ("multiselect", "multiplechoice"):
        if "choices" not in item:
            return "Survey question %d of type %s must specify choices." % (idx, qtype)
        choices = item["choices"]
        if isinstance(choices, str):
            choices = [c for c in choices.splitlines() if c.strip()]
        if "default" in item:
            defaults = item["default"]
            if isinstance(defaults, str):
                defaults = [d for d in defaults.splitlines() if d.strip()]
            if qtype == "multiplechoice" and len(defaults) > 1:
                return "Multiple Choice (Single Select) can only have one default value."
            if any(d not in choices for d in defaults):
                return "Default choice must be answered from the choices listed."
    if isinstance(item.get("default"), str) and item["default"].startswith("$encrypted$") and qtype != "password":
        return "$encrypted$ is a reserved keyword for password question defaults, survey question %d." % idx
    return None


def awx_answer_errors(item, data, validate_required=True):
    """SurveyJobTemplateMixin._survey_element_validation: the errors for an answer (``data`` maps
    the variable to the value).  A default that fails it is dropped at launch, silently."""
    var = item["variable"]
    errors = []
    if var not in data:
        if item["required"] and validate_required:
            errors.append("'%s' value missing" % var)
        return errors
    value = data[var]
    lo = item.get("min") if item.get("min") not in ("", None) else None
    hi = item.get("max") if item.get("max") not in ("", None) else None
    qtype = item["type"]
    if qtype in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return ["Value %s for '%s' expected to be a string." % (value, var)]
        if lo is not None and len(value) < int(lo):
            errors.append("'%s' value %s is too small (length is %d must be at least %s)." % (var, value, len(value), lo))
        if hi is not None and len(value) > int(hi):
            errors.append("'%s' value %s is too large (must be no more than %s)." % (var, value, hi))
    elif qtype in ("integer", "float"):
        wanted = (int,) if qtype == "integer" else (float, int)
        if type(value) not in wanted:  # AWX compares types exactly: True is not an integer here
            return ["Value %s for '%s' expected to be %s." % (value, var, "an integer" if qtype == "integer"
                                                              else "a numeric type")]
        if lo is not None and value < lo:
            errors.append("'%s' value %s is too small (must be at least %s)." % (var, value, lo))
        if hi is not None and value > hi:
            errors.append("'%s' value %s is too large (must be no more than %s)." % (var, value, hi))
    elif qtype in ("multiselect", "multiplechoice"):
        choices = item["choices"]
        if isinstance(choices, str):
            choices = [c for c in choices.splitlines() if c.strip()]
        values = value if qtype == "multiselect" else [value]
        if qtype == "multiselect" and not isinstance(value, list):
            return ["'%s' value is expected to be a list." % var]
        errors.extend("Value %s for '%s' expected to be one of %s." % (v, var, choices)
                      for v in values if v not in choices)
    return errors


def hostfw_rule_errors(survey):
    """hostfw's rules beyond AWX's: what a survey variable may be."""
    from ansible.utils.vars import isidentifier
    from ansible.vars.reserved import is_reserved_name

    errors = []
    for item in survey.get("spec", []):
        var = item.get("variable")
        if not isinstance(var, str) or not isidentifier(var):
            errors.append("%r is not a valid variable name" % (var,))
            continue
        if is_reserved_name(var):
            errors.append("%s is a reserved Ansible name" % var)
        if var.startswith(("ansible_", "awx_", "tower_")):
            errors.append("%s is a connection or AWX variable" % var)
        if var in AWX_PROMPT_NAMES:
            errors.append("%s is an AWX launch prompt, not a variable (use ask_%s_on_launch)" % (var, var))
        if var in POLICY_VARIABLES:
            errors.append("%s is policy or inventory data and must never come from a survey" % var)
        elif var not in OPERATIONAL_VARIABLES:
            errors.append("%s is not one of the operational switches %s" % (var, sorted(OPERATIONAL_VARIABLES)))
        if not str(item.get("question_name", "")).strip():
            errors.append("%s: empty question_name" % var)
        if item.get("type") == "integer":
            if not isinstance(item.get("min"), int) or not isinstance(item.get("max"), int):
                errors.append("%s: integer questions need min and max" % var)
            elif not item["min"] <= item["max"]:
                errors.append("%s: min %s > max %s" % (var, item["min"], item["max"]))
        if "default" in item:
            errors.extend(awx_answer_errors(item, {var: item["default"]}))
    return errors


def launch(tmpl, limit=None, answers=None):
    """What AWX runs for a launch of ``tmpl``: the command-line options it derives from the
    template, and the extra vars (survey defaults that pass validation, then the answers)."""
    extravars = {}
    for item in tmpl["survey_spec"]["spec"] if tmpl.get("survey_enabled") else []:
        if item.get("default") is not None and not awx_answer_errors(item, {item["variable"]: item["default"]}):
            extravars[item["variable"]] = item["default"]
    for key, value in (answers or {}).items():
        items = [i for i in tmpl["survey_spec"]["spec"] if i["variable"] == key]
        assert items, "%s is not a survey variable of %s" % (key, tmpl["name"])
        assert not awx_answer_errors(items[0], {key: value}), awx_answer_errors(items[0], {key: value})
        extravars[key] = value
    args = []
    if tmpl["job_type"] == "check":
        args.append("--check")
    if tmpl.get("diff_mode"):
        args.append("--diff")
    if tmpl.get("become_enabled"):
        args.append("--become")
    if limit:
        assert tmpl.get("ask_limit_on_launch"), "%s does not prompt for a limit" % tmpl["name"]
        args += ["--limit", limit]
    return args, extravars


# --------------------------------------------------------------------------------------------
# (a) the surveys and the templates
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tmpl", TEMPLATES, ids=[t["name"] for t in TEMPLATES])
def test_survey_is_valid_for_awx(tmpl):
    assert tmpl["survey_enabled"] is True
    assert awx_spec_errors(tmpl["survey_spec"]) == []
    assert hostfw_rule_errors(tmpl["survey_spec"]) == []


@pytest.mark.parametrize("tmpl", TEMPLATES, ids=[t["name"] for t in TEMPLATES])
def test_survey_defaults_all_reach_the_playbook(tmpl):
    """AWX passes a default only when it passes its own answer validation."""
    dummy, extravars = launch(tmpl)
    assert sorted(extravars) == sorted(i["variable"] for i in tmpl["survey_spec"]["spec"])


def _bad(mutate):
    survey = copy.deepcopy(template("playbooks/rollout.yml", "run")["survey_spec"])
    mutate(survey["spec"])
    return survey


AWX_REJECTS = {
    "duplicate variable": lambda spec: spec.append(dict(spec[0])),
    "unknown type": lambda spec: spec[0].update(type="number"),
    "required not a boolean": lambda spec: spec[0].update(required="yes"),
    "missing question_name": lambda spec: spec[0].pop("question_name"),
    "integer default as a string": lambda spec: spec[1].update(default="5"),
    "min not an integer": lambda spec: spec[1].update(min="1"),
    "choice without choices": lambda spec: spec[0].update(type="multiplechoice"),
    "default not among the choices": lambda spec: spec[0].update(type="multiplechoice", choices="a\nb"),
    "encrypted default on text": lambda spec: spec[0].update(default="$encrypted$x"),
}

HOSTFW_REJECTS = {
    "policy variable": lambda spec: spec[0].update(variable="hostfw_resources"),
    "manifests": lambda spec: spec[0].update(variable="hostfw_manifests"),
    "host endpoints": lambda spec: spec[0].update(variable="hostfw_host_endpoints"),
    "not an identifier": lambda spec: spec[0].update(variable="hostfw hosts"),
    "reserved name": lambda spec: spec[0].update(variable="serial"),
    "connection variable": lambda spec: spec[0].update(variable="ansible_host"),
    "limit as a variable": lambda spec: spec[0].update(variable="limit"),
    "unknown switch": lambda spec: spec[0].update(variable="hostfw_fast"),
    "default out of range": lambda spec: spec[2].update(default=5),
    "default too long": lambda spec: spec[0].update(max=2, default="all-nodes"),
    "integer without bounds": lambda spec: spec[1].pop("max"),
}


@pytest.mark.parametrize("name", sorted(AWX_REJECTS))
def test_awx_rules_reject(name):
    """The re-implemented AWX rules are not vacuous."""
    assert awx_spec_errors(_bad(AWX_REJECTS[name])) != []


@pytest.mark.parametrize("name", sorted(HOSTFW_REJECTS))
def test_hostfw_rules_reject(name):
    assert hostfw_rule_errors(_bad(HOSTFW_REJECTS[name])) != []


def test_templates_plan_apply_render():
    plan = template("playbooks/rollout.yml", "check")
    apply = template("playbooks/rollout.yml", "run")
    render = template("playbooks/render.yml", "run")
    assert plan["diff_mode"] is True
    assert plan["become_enabled"] is True and apply["become_enabled"] is True
    assert plan["ask_limit_on_launch"] is True and apply["ask_limit_on_launch"] is True
    assert render["become_enabled"] is False
    assert len(TEMPLATES) == 4 and len({t["name"] for t in TEMPLATES}) == 4
    for tmpl in TEMPLATES:
        assert os.path.isfile(os.path.join(ROOT, tmpl["playbook"])), tmpl["playbook"]
        assert tmpl["survey_spec"]["name"] == tmpl["name"]
    # the rollback must be able to wait for a reconnection attempt that gave up
    defaults = launch(apply)[1]
    assert defaults["hostfw_reconnect_timeout"] < defaults["hostfw_rollback_timeout"]


def test_rollout_survey_variables_are_role_options():
    """Every rollout survey variable is a documented option of the role, of a matching type."""
    with open(ROLE_SPECS, encoding="utf-8") as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    types = {"integer": ("int", "raw"), "float": ("float", "raw"), "text": ("str", "raw", "path")}
    for tmpl in TEMPLATES:
        if tmpl["playbook"] != "playbooks/rollout.yml":
            continue
        for item in tmpl["survey_spec"]["spec"]:
            assert item["variable"] in options, item["variable"]
            assert options[item["variable"]]["type"] in types[item["type"]], item["variable"]
    with open(os.path.join(ROOT, "playbooks", "render.yml"), encoding="utf-8") as handle:
        render_text = handle.read()
    for item in template("playbooks/render.yml", "run")["survey_spec"]["spec"]:
        assert item["variable"] in render_text


def _awx_job_template_options(module="job_template"):
    spec = importlib.util.find_spec("ansible_collections.awx.awx")
    paths = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
    for base in paths:
        path = os.path.join(base, "plugins", "modules", "%s.py" % module)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                tree = ast.parse(handle.read())
            for node in tree.body:
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DOCUMENTATION":
                    options = yaml.safe_load(node.value.value)["options"]
                    if module == "workflow_job_template":
                        return set(options), set(options["workflow_nodes"]["suboptions"])
                    return set(options)
    return None


def test_configure_playbook_passes_every_template_key():
    with open(CONFIGURE_FILE, encoding="utf-8") as handle:
        plays = yaml.safe_load(handle)
    assert len(plays) == 1 and plays[0]["hosts"] == "localhost"
    assert plays[0]["vars_files"] == ["job_templates.yml", "workflow_templates.yml"]
    tasks = [t for t in plays[0]["tasks"] if "awx.awx.job_template" in t]
    assert len(tasks) == 1
    task = tasks[0]
    assert task["loop"] == "{{ hostfw_awx_job_templates }}"
    args = task["awx.awx.job_template"]
    for tmpl in TEMPLATES:
        for key in tmpl:
            assert args.get(key) == "{{ item.%s }}" % key, key
    for key in ("project", "inventory", "organization", "credentials"):
        assert key in args
    # no controller credentials in the playbook: they come from CONTROLLER_* or a config file
    assert not {"controller_host", "controller_username", "controller_password", "controller_oauthtoken"} & set(args)
    options = _awx_job_template_options()
    if options is None:
        pytest.skip("awx.awx is not installed: cannot compare with awx.awx.job_template's options")
    assert set(args) <= options, set(args) - options
    for tmpl in TEMPLATES:
        assert set(tmpl) <= options, set(tmpl) - options


# --------------------------------------------------------------------------------------------
# (b) the playbooks under ansible-runner
# --------------------------------------------------------------------------------------------

def search_path():
    """PATH with the directory of the interpreter running the tests first: ansible-runner starts
    the first ansible-playbook on PATH, which may belong to another installation."""
    return os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


def run(tmpl, inventory, tmp_path, limit=None, answers=None, label="run", artifacts=None):
    """``artifacts``: what earlier nodes of a workflow handed on (set_stats), which AWX adds to
    the job's extra vars."""
    ansible_runner = pytest.importorskip("ansible_runner")
    cmdline, extravars = launch(tmpl, limit, answers)
    extravars.update(artifacts or {})
    private = tmp_path / ("runner-" + label)
    private.mkdir()
    result = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=ROOT,
        playbook=tmpl["playbook"],
        inventory=str(inventory),
        extravars=extravars,
        cmdline=" ".join(shlex.quote(arg) for arg in cmdline),
        envvars={"ANSIBLE_COLLECTIONS_PATH": COLLECTIONS, "ANSIBLE_NOCOLOR": "1", "PATH": search_path(),
                 "HOSTFW_CACHE_DIR": str(tmp_path / "cache")},
        quiet=True,
    )
    result.hostfw_stdout = _read(os.path.join(result.config.artifact_dir, "stdout"))
    return result


def _read(path):
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def events(result, event=None, host=None, action=None, state=None, task=None):
    out = []
    for ev in result.events:
        data = ev.get("event_data", {})
        if event and ev.get("event") != event:
            continue
        if host and data.get("host") != host:
            continue
        if action and data.get("resolved_action") != action:
            continue
        if task and task not in data.get("task", ""):
            continue
        if state and data.get("res", {}).get("invocation", {}).get("module_args", {}).get("state") != state:
            continue
        out.append(ev)
    return out


def assert_artifacts(result, status):
    art = result.config.artifact_dir
    assert _read(os.path.join(art, "status")).strip() == status
    files = glob.glob(os.path.join(art, "job_events", "*.json"))
    assert files, "no job events in %s" % art
    names = set()
    for path in files:
        with open(path, encoding="utf-8") as handle:
            names.add(json.load(handle)["event"])
    assert {"playbook_on_start", "playbook_on_stats"} <= names, names


def assert_successful(result):
    assert result.status == "successful" and result.rc == 0, result.hostfw_stdout[-4000:]
    assert_artifacts(result, "successful")


# -- render and matrix -------------------------------------------------------------------------

def check_render(result, out):
    assert_successful(result)
    compiled = events(result, "runner_on_ok", action="hostfw.nftables.compile")
    assert len(compiled) == 1, "the compile task runs once per run"
    res = compiled[0]["event_data"]["res"]
    assert res["summary"].startswith("2 host(s) compiled from 2 inventory host(s)")
    assert res["compiled"] == 2 and res["refusals"] == []
    assert res["written"] == ["policy-llm-control-plane.nft", "policy-llm-worker.nft"]
    assert res["hosts"] == {}, "the render playbook asks for no per-host details (host_details: false)"
    with open(out / "matrix.json", encoding="utf-8") as handle:
        matrix = json.load(handle)
    assert matrix["cells"] and res["matrix_cells"] == len(matrix["cells"])
    assert {e["name"] for e in matrix["endpoints"]} >= {"host/node-control-plane", "host/node-worker"}
    for name in res["written"]:
        lines = (out / name).read_text().splitlines()
        assert ["table inet hostfw", "delete table inet hostfw", "table inet hostfw {"] == \
            [line for line in lines if line.startswith(("table ", "delete "))]
    assert (out / "matrix.md").is_file()
    return {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("render")
    out = tmp / "out"
    result = run(template("playbooks/render.yml", "run"), os.path.join(EXAMPLE, "inventory.yml"), tmp,
                 answers={"hostfw_output_dir": str(out)})
    return result, out


@pytest.mark.slow
def test_render_template_two_node_cluster(rendered):
    result, out = rendered
    check_render(result, out)


@pytest.mark.slow
def test_render_template_inventory_elsewhere(rendered, tmp_path):
    """AWX writes the inventory to /runner/inventory, away from the manifests: relative
    hostfw_manifests paths then miss, and {{ playbook_dir }} finds them."""
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    shutil.copy(os.path.join(EXAMPLE, "inventory.yml"), str(inv / "hosts.yml"))
    (inv / "group_vars" / "all.yml").write_text(
        "hostfw_manifests:\n  - \"{{ playbook_dir }}/../examples/two-node-cluster/manifests/*.yaml\"\n")
    out = tmp_path / "out"
    result = run(template("playbooks/render.yml", "run"), inv / "hosts.yml", tmp_path,
                 answers={"hostfw_output_dir": str(out)})
    files = check_render(result, out)
    before = {p.name: p.read_bytes() for p in rendered[1].iterdir()}
    assert sorted(files) == sorted(before)
    for name in files:
        if name == "candidates.json":
            # the candidates name the inputs by a digest that includes where they were read from
            new, old = json.loads(files[name]), json.loads(before[name])
            assert new.pop("input_digest") != old.pop("input_digest") and new == old, name
        else:
            assert files[name] == before[name], name


# -- plan and apply -----------------------------------------------------------------------------

def _have_netns_tools():
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "nft", "unshare", "su"):
        if not shutil.which(tool):
            return "needs %s" % tool
    return None


NETNS_SKIP = _have_netns_tools()

HEP = {"apiVersion": "projectcalico.org/v3", "kind": "HostEndpoint",
       "metadata": {"name": "node-a-all", "labels": {"role": "node"}},
       "spec": {"node": "node-a", "interfaceName": "*", "expectedIPs": ["192.0.2.10"]}}
EGRESS = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
          "metadata": {"name": "node-egress"},
          "spec": {"selector": "role == 'node'", "types": ["Egress"], "egress": [{"action": "Allow"}]}}
HTTPS = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
         "metadata": {"name": "node-https"},
         "spec": {"selector": "role == 'node'",
                  "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [443]}}]}}


class Netns(object):
    """A private network namespace and a Python wrapper that runs modules inside it."""

    def __init__(self, tmp_path):
        self.name = "hostfw-awx-%s" % uuid.uuid4().hex[:8]
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        self.python = tmp_path / "netns-python"
        self.python.write_text("#!/bin/sh\n# modules run inside network namespace %s\nexec ip netns exec %s %s \"$@\"\n"
                               % (self.name, self.name, sys.executable))
        self.python.chmod(0o755)
        self.state_dir = tmp_path / "state"

    def nft(self, *args, data=None):
        return subprocess.run(["ip", "netns", "exec", self.name, "nft"] + list(args), input=data,
                              capture_output=True, text=True, check=False)

    def table_sha(self):
        proc = self.nft("-s", "list", "table", "inet", "hostfw")
        return hashlib.sha256(proc.stdout.encode()).hexdigest() if proc.returncode == 0 else None

    def close(self):
        armed = os.path.join(str(self.state_dir), "armed.json")
        if os.path.exists(armed):  # a rollback still waiting after a failed test: stop it
            with open(armed, encoding="utf-8") as handle:
                pid = json.load(handle).get("pid")
            if pid:
                try:
                    os.kill(int(pid), signal.SIGTERM)
                except OSError:
                    pass
        subprocess.run(["ip", "netns", "delete", self.name], check=False)


@pytest.fixture
def netns(tmp_path):
    if NETNS_SKIP:
        pytest.skip(NETNS_SKIP)
    ns = Netns(tmp_path)
    yield ns
    ns.close()


def write_inventory(tmp_path, ns, resources, **group_vars):
    """node-a: a HostEndpoint, modules inside the namespace; node-b: no HostEndpoint."""
    inventory = {"all": {
        "vars": dict({"ansible_connection": "local", "ansible_become_method": "su",
                      "hostfw_state_dir": str(ns.state_dir), "hostfw_resources": resources}, **group_vars),
        "hosts": {"node-a": {"ansible_python_interpreter": str(ns.python)},
                  "node-b": {"ansible_python_interpreter": sys.executable}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def nothing_to_roll_out(result, host):
    said = [e for e in events(result, "runner_on_ok", host=host, action="ansible.builtin.debug")
            if "nothing to roll out" in str(e["event_data"]["res"].get("msg"))]
    assert said, result.hostfw_stdout[-3000:]
    assert not events(result, host=host, action="hostfw.nftables.nft_table")


@pytest.mark.slow
def test_plan_template_host_without_host_endpoint(netns, tmp_path):
    inventory = write_inventory(tmp_path, netns, [HEP, EGRESS])
    result = run(template("playbooks/rollout.yml", "check"), inventory, tmp_path, limit="node-b")
    assert_successful(result)
    nothing_to_roll_out(result, "node-b")
    assert result.stats["processed"] == {"node-b": 1}


@pytest.mark.slow
def test_plan_template_shows_the_change_and_changes_nothing(netns, tmp_path):
    """A host that runs an older table: the plan stages the candidate in check mode, shows the
    diff, never arms, applies or confirms, and leaves the running table as it was."""
    from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_documents
    old = compile_documents([HEP, EGRESS]).ruleset("node-a")
    loaded = netns.nft("-f", "-", data=old)
    assert loaded.returncode == 0, loaded.stderr
    before = netns.table_sha()
    inventory = write_inventory(tmp_path, netns, [HEP, EGRESS, HTTPS])
    result = run(template("playbooks/rollout.yml", "check"), inventory, tmp_path)
    assert_successful(result)
    staged = events(result, "runner_on_ok", host="node-a", action="hostfw.nftables.nft_table", state="stage")
    assert len(staged) == 1 and staged[0]["event_data"]["res"]["changed"] is True
    diffs = events(result, "runner_on_file_diff", host="node-a", action="hostfw.nftables.nft_table")
    assert diffs and "node-https" in json.dumps(diffs[0]["event_data"]["diff"])
    assert "node-https" in staged[0]["event_data"]["res"]["unified_diff"]
    for state in ("arm", "apply", "confirm", "persist"):
        assert not events(result, host="node-a", action="hostfw.nftables.nft_table", state=state), state
    # no commit in check mode (a plan costs what a run without change costs: the stage call)
    assert not events(result, host="node-a", action="hostfw.nftables.nft_commit")
    nothing_to_roll_out(result, "node-b")
    assert netns.table_sha() == before
    assert not os.path.exists(str(netns.state_dir)), "check mode wrote the state directory"


@pytest.mark.slow
def test_plan_template_host_without_any_table(netns, tmp_path):
    inventory = write_inventory(tmp_path, netns, [HEP, EGRESS])
    result = run(template("playbooks/rollout.yml", "check"), inventory, tmp_path, limit="node-a")
    assert netns.table_sha() is None
    assert_successful(result)


@pytest.mark.slow
def test_apply_template_rolls_out_and_confirms(netns, tmp_path):
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd is PID 1 here: the rollback would be a systemd timer in the machine's own network "
                    "namespace, outside the test's namespace")
    inventory = write_inventory(tmp_path, netns, [HEP, EGRESS], hostfw_persist=False)
    apply = template("playbooks/rollout.yml", "run")
    result = run(apply, inventory, tmp_path, label="first")
    assert_successful(result)
    stage = events(result, "runner_on_ok", host="node-a", action="hostfw.nftables.nft_table", state="stage")
    candidate = stage[0]["event_data"]["res"]["sha256_after"]
    # arm + apply, a new connection, confirm: one task (hostfw.nftables.nft_commit)
    done = events(result, "runner_on_ok", host="node-a", action="hostfw.nftables.nft_commit")
    assert len(done) == 1 and done[0]["event_data"]["res"]["changed"] is True
    confirmed = done[0]["event_data"]["res"]
    assert confirmed["applied"] is True and confirmed["confirmed"] is True and confirmed["primed"] is True
    assert confirmed["sha256_after"] == candidate and confirmed["armed"] is False
    assert "reconnect_confirm" in confirmed["steps"] and 0 < confirmed["armed_seconds"] < 60
    assert netns.table_sha() is not None
    assert not os.path.exists(os.path.join(str(netns.state_dir), "armed.json"))
    with open(os.path.join(str(netns.state_dir), "confirmed.json"), encoding="utf-8") as handle:
        assert json.load(handle)["sha256"] == candidate
    nothing_to_roll_out(result, "node-b")

    again = run(apply, inventory, tmp_path, label="second")
    assert_successful(again)
    assert again.stats["changed"] == {}, again.stats
    assert not events(again, host="node-a", action="hostfw.nftables.nft_table", state="apply")


@pytest.mark.slow
def test_configure_playbook_reads_the_controller_from_the_environment(tmp_path):
    """No controller is reachable here: point CONTROLLER_HOST at a closed port and check that
    awx.awx.job_template accepted every option and tried that host for each template."""
    ansible_runner = pytest.importorskip("ansible_runner")
    if _awx_job_template_options() is None:
        pytest.skip("awx.awx is not installed")
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    result = ansible_runner.run(
        private_data_dir=str(tmp_path), project_dir=AWX_DIR, playbook="configure.yml",
        extravars={"hostfw_awx_project": "hostfw", "hostfw_awx_inventory": "nodes",
                   "hostfw_awx_credentials": ["ssh to nodes"]},
        envvars={"CONTROLLER_HOST": "http://127.0.0.1:%d" % port, "CONTROLLER_OAUTH_TOKEN": "not-a-token",
                 "ANSIBLE_NOCOLOR": "1", "PATH": search_path()},
        quiet=True)
    assert result.status == "failed"
    failed = events(result, "runner_item_on_failed", action="awx.awx.job_template")
    assert sorted(e["event_data"]["res"]["item"]["name"] for e in failed) == sorted(t["name"] for t in TEMPLATES)
    for ev in failed:
        msg = ev["event_data"]["res"]["msg"]
        assert "127.0.0.1:%d" % port in msg and "Unsupported parameters" not in msg, msg


# -- the workflow: render once, apply in slices ---------------------------------------------------

def test_workflow_template_nodes():
    """The workflow renders in one job and rolls out in a sliced job; its nodes name existing
    templates, pass only survey variables, and configure.yml hands every key to awx.awx."""
    assert len(WORKFLOWS) == 1
    flow = WORKFLOWS[0]
    nodes = {n["identifier"]: n for n in flow["workflow_nodes"]}
    assert list(nodes) == ["render", "apply"]
    render, apply = (by_name(nodes[i]["unified_job_template"]["name"]) for i in ("render", "apply"))
    assert all(nodes[i]["unified_job_template"]["type"] == "job_template" for i in nodes)
    assert render["playbook"] == "playbooks/render.yml" and render["job_slice_count"] == 1
    assert apply["playbook"] == "playbooks/rollout.yml" and apply["job_type"] == "run" and apply["job_slice_count"] > 1
    assert apply["ask_limit_on_launch"] is False  # a slice is the limit
    assert nodes["render"]["related"]["success_nodes"] == [{"identifier": "apply"}]
    # AWX accepts a node's extra_data for its template's survey variables only
    for node in nodes.values():
        tmpl = by_name(node["unified_job_template"]["name"])
        assert set(node.get("extra_data") or {}) <= {i["variable"] for i in tmpl["survey_spec"]["spec"]}
    # the candidates reach the rollout as the render's artifacts only, never from a survey
    assert not {"hostfw_candidate_dir", "hostfw_candidate_digest"} & {i["variable"] for i in apply["survey_spec"]["spec"]}
    with open(CONFIGURE_FILE, encoding="utf-8") as handle:
        plays = yaml.safe_load(handle)
    assert plays[0]["vars_files"] == ["job_templates.yml", "workflow_templates.yml"]
    task = [t for t in plays[0]["tasks"] if "awx.awx.workflow_job_template" in t]
    assert len(task) == 1 and task[0]["loop"] == "{{ hostfw_awx_workflow_templates }}"
    args = task[0]["awx.awx.workflow_job_template"]
    for key in flow:
        assert args.get(key) == "{{ item.%s }}" % key, key
    options = _awx_job_template_options("workflow_job_template")
    if options is None:
        pytest.skip("awx.awx is not installed")
    assert set(args) <= options[0], set(args) - options[0]
    for node in flow["workflow_nodes"]:
        assert set(node) <= options[1], set(node) - options[1]


SLICED_HOSTS = ["app-1", "app-2", "db-1", "db-2"]
APP = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy", "metadata": {"name": "app-to-db"},
       "spec": {"selector": "role == 'db'", "ingress": [
           {"action": "Allow", "protocol": "TCP", "source": {"selector": "role == 'app'"},
            "destination": {"ports": [5432]}}]}}
DB_TO_APP = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy", "metadata": {"name": "db-to-app"},
             "spec": {"selector": "role == 'app'", "ingress": [
                 {"action": "Allow", "protocol": "TCP", "source": {"selector": "role == 'db'"},
                  "destination": {"ports": [8080]}}]}}


def fleet_inventory(tmp_path, namespaces):
    """Four hosts whose host endpoints come from their own inventory variables
    (hostfw_auto_host_endpoint, hostfw_host_ips, hostfw_labels), each running its modules in its
    own network namespace; the policy in the group variables selects the other role's hosts."""
    hosts = {}
    for i, host in enumerate(SLICED_HOSTS):
        ns = namespaces[host]
        hosts[host] = {"ansible_python_interpreter": str(ns.python), "hostfw_state_dir": str(ns.state_dir),
                       "hostfw_host_ips": ["192.0.2.%d" % (i + 1)], "hostfw_labels": {"role": host.split("-")[0]}}
    return {"all": {"vars": {"ansible_connection": "local", "ansible_become_method": "su", "hostfw_persist": False,
                             "hostfw_auto_host_endpoint": True, "hostfw_resources": [HEP_EGRESS, APP, DB_TO_APP]},
                    "hosts": hosts}}


HEP_EGRESS = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy", "metadata": {"name": "egress"},
              "spec": {"selector": "all()", "types": ["Egress"], "egress": [{"action": "Allow"}]}}


def awx_slice(inventory, number, count):
    """The inventory AWX gives slice ``number`` of ``count`` (awx/main/models/inventory.py
    Inventory.get_script_data: hosts ordered by name, ``hosts[number - 1::count]``; the groups and
    their variables stay, other hosts and their variables are gone)."""
    sliced = copy.deepcopy(inventory)
    names = sorted(inventory["all"]["hosts"])[number - 1::count]
    sliced["all"]["hosts"] = {h: inventory["all"]["hosts"][h] for h in names}
    return sliced


def write_yaml(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def artifacts_of(result):
    stats = [e for e in result.events if e.get("event") == "playbook_on_stats"]
    return dict(stats[-1]["event_data"].get("artifact_data") or {})


@pytest.fixture
def four_netns(tmp_path):
    if NETNS_SKIP:
        pytest.skip(NETNS_SKIP)
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd is PID 1 here: the rollback would be a systemd timer in the machine's own network "
                    "namespace, outside the test's namespaces")
    spaces = {}
    try:
        for host in SLICED_HOSTS:
            base = tmp_path / ("ns-" + host)
            base.mkdir()
            spaces[host] = Netns(base)
        yield spaces
    finally:
        for ns in spaces.values():
            ns.close()


def tables(spaces):
    return {h: ns.nft("list", "table", "inet", "hostfw").stdout for h, ns in spaces.items()}


@pytest.mark.slow
def test_workflow_render_once_apply_in_two_slices_equals_an_unsliced_rollout(four_netns, tmp_path):
    inventory = fleet_inventory(tmp_path, four_netns)
    full = write_yaml(tmp_path / "full" / "hosts.yml", inventory)

    # the reference: one unsliced rollout of the whole inventory
    unsliced = run(template("playbooks/rollout.yml", "run"), full, tmp_path, label="unsliced")
    assert_successful(unsliced)
    reference = tables(four_netns)
    assert all(reference.values()), reference
    assert "192.0.2.1" in reference["db-1"] and "192.0.2.3" in reference["app-2"]  # other hosts' endpoints
    for ns in four_netns.values():
        assert ns.nft("delete", "table", "inet", "hostfw").returncode == 0

    # the workflow: node 1 renders the whole inventory in one job
    flow = WORKFLOWS[0]
    nodes = {n["identifier"]: n for n in flow["workflow_nodes"]}
    candidates = tmp_path / "candidates"
    render_answers = {k: str(candidates) for k in nodes["render"]["extra_data"]}  # hostfw_awx_candidate_dir
    rendered = run(by_name(nodes["render"]["unified_job_template"]["name"]), full, tmp_path, label="render",
                   answers=render_answers)
    assert_successful(rendered)
    handed_on = artifacts_of(rendered)
    assert handed_on["hostfw_candidate_dir"] == str(candidates) and len(handed_on["hostfw_candidate_digest"]) == 64
    # node 2 runs as two slices, each with its part of the inventory and the render's artifacts
    apply = by_name(nodes["apply"]["unified_job_template"]["name"])
    for number in (1, 2):
        part = write_yaml(tmp_path / ("slice-%d" % number) / "hosts.yml", awx_slice(inventory, number, 2))
        sliced = run(apply, part, tmp_path, label="slice-%d" % number, artifacts=handed_on)
        assert_successful(sliced)
        committed = events(sliced, "runner_on_ok", action="hostfw.nftables.nft_commit")
        done = {e["event_data"]["host"] for e in committed if e["event_data"]["res"].get("confirmed")}
        assert done == set(sorted(SLICED_HOSTS)[number - 1::2]), done
    assert tables(four_netns) == reference

    # the control: a slice that compiles by itself misses the other slice's endpoints
    alone_inventory = write_yaml(tmp_path / "alone" / "hosts.yml", awx_slice(inventory, 1, 2))
    alone = run(template("playbooks/render.yml", "run"), alone_inventory, tmp_path, label="alone", answers={"hostfw_output_dir": str(tmp_path / "alone-out")})
    assert_successful(alone)
    assert (tmp_path / "alone-out" / "app-1.nft").read_text() != (candidates / "app-1.nft").read_text()


@pytest.mark.slow
def test_apply_from_render_refuses_a_render_of_another_version_or_without_a_host(tmp_path, netns):
    inventory = {"all": {"vars": {"ansible_connection": "local", "hostfw_auto_host_endpoint": True,
                                  "hostfw_resources": [HEP_EGRESS]},
                         "hosts": {"app-1": {"hostfw_host_ips": ["192.0.2.1"], "hostfw_state_dir": str(netns.state_dir),
                                             "ansible_python_interpreter": str(netns.python)}}}}
    one = write_yaml(tmp_path / "one" / "hosts.yml", inventory)
    out = tmp_path / "out"
    rendered = run(template("playbooks/render.yml", "run"), one, tmp_path, label="render",
                   answers={"hostfw_output_dir": str(out)})
    assert_successful(rendered)
    handed_on = artifacts_of(rendered)
    inventory["all"]["hosts"]["db-9"] = dict(inventory["all"]["hosts"]["app-1"])
    two = write_yaml(tmp_path / "two" / "hosts.yml", inventory)
    apply = by_name(FROM_RENDER)
    missing = run(apply, two, tmp_path, label="missing", artifacts=handed_on)
    assert missing.status == "failed"
    assert ("hostfw: refusing the candidates, nothing was changed on any host: hostfw_candidate_dir %s has no candidate "
            "for db-9 (it was rendered from an inventory without it): render the whole inventory into it again" % out
            in missing.hostfw_stdout), missing.hostfw_stdout[-3000:]
    index = json.loads((out / "candidates.json").read_text())
    (out / "candidates.json").write_text(json.dumps(dict(index, collection_version="0.0.1")))
    old = run(apply, one, tmp_path, label="old", artifacts=handed_on)
    assert old.status == "failed"
    assert ("hostfw_candidate_dir %s was rendered by hostfw.nftables 0.0.1, this rollout is" % out) in old.hostfw_stdout
    (out / "candidates.json").write_text(json.dumps(index))
    other = run(apply, one, tmp_path, label="other", artifacts=dict(handed_on, hostfw_candidate_digest="0" * 64))
    assert other.status == "failed" and "another render replaced it" in other.hostfw_stdout
    assert netns.table_sha() is None  # nothing was applied
