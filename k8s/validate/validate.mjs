#!/usr/bin/env node
// Strict, offline validation of Kubernetes manifests: `node validate.mjs [--lameduck] FILE...`.
//
// Each FILE is YAML (any number of documents, parsed as YAML 1.1 like kubectl, duplicate keys
// rejected) or JSON (one object, a `kind: List`, or an array of objects). Every object is checked
// against the Kubernetes API schema of its apiVersion and kind, using the model classes of the
// `kubernetes-models` package (pinned in package.json; its schemas are Kubernetes 1.33's), and:
//
//   - strictly: a field the schema does not know is a problem, like the API server's
//     `--validate=strict` / `fieldValidation=Strict`. kubernetes-models' validators are ajv
//     standalone code generated without `additionalProperties: false`, so by themselves they let
//     `readinessProb:` through. Here the object is handed to the class's own validator behind a
//     Proxy that records which property names the validator reads: ajv's generated code reads
//     every property its schema declares (present or not) and enumerates the keys of map-typed
//     objects (labels, annotations, resources). An object whose declared properties were read,
//     and whose keys were not enumerated, has exactly those keys known; any other key is unknown.
//     An object the validator never looked into (a free-form field, or one under an error
//     already reported) is not judged, and neither is `.status`: the cluster writes it, and the
//     API server drops it from create and apply.
//   - with the checks the API server makes beyond the schema and that are cheap to make here:
//     unique container names, volume mounts that name a volume, port names (IANA service names,
//     at most 15 characters), probes, hooks and restartPolicy only where the API allows them, named
//     probe and hook ports that exist in that container, a workload selector that matches its pod
//     template, and a Service whose selector and named targetPort find a pod template in the
//     same file. A named targetPort declared by a native sidecar alone is how lameduck is wired
//     (k8s/README.md); one declared both by a regular container and by a sidecar (or by a
//     container named `lameduck`) is a problem: Kubernetes resolves the name in the regular
//     containers first, so the Service would bypass the sidecar.
//   - custom resources (a group with a dot that Kubernetes does not serve: cert-manager.io, ...)
//     have no schema here: they are counted as "not checked (no schema)", not reported. A group
//     without a dot, or one kubernetes-models knows, is Kubernetes' own: an apiVersion or kind it
//     does not have there is a problem (a typo, or a version removed before 1.33). One exception:
//     an Argo Rollout (argoproj.io/v1alpha1), which `lameduck inject` wires: its .spec.template
//     is checked as strictly as a Deployment's (as a core/v1 PodTemplateSpec), and its pod spec
//     as any other below; its other fields are Argo's and not judged.
//   - with --lameduck, also the wiring conventions of k8s/README.md for every pod that has a
//     container named `lameduck`: it is a native sidecar or a regular container, it owns the
//     readiness probe; each container wired to it (mounting its volume, or with a preStop that
//     talks to it), and at least one, waits for the drain in its preStop, over loopback, the
//     admin socket or httpGet with a token, without giving up before the drain can end; a
//     classic lameduck waits for its own drain too (unless it signals the app through a shared
//     PID namespace); and the grace period covers drain delay + drain timeout + app exit (+ the
//     `--then-sleep` of an app's own preStop chained after the drain; a `--then -- CMD` is not
//     judged).
//
// Prints one line per problem, `FILE: KIND/NAME (document N): .json.path: message`, and exits 1
// if there was any, 2 for bad usage, 0 otherwise; on stderr, a note for each object not checked
// and a summary line. It never touches the network: it does not ask a cluster, and the schemas
// come from node_modules.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

// ---------------------------------------------------------------------------------------------
// Output

const problems = [];

function report(where, path, message) {
  problems.push(`${where.file}: ${where.object}: ${path || "(top)"}: ${message}`);
}

// ".spec.containers[0].name" from path segments; keys that are not identifiers are quoted.
function formatPath(segments) {
  let out = "";
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(segment)) out += `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

// ajv's instancePath is a JSON pointer; array indexes become numbers by looking at the data.
function pointerToSegments(root, pointer) {
  if (!pointer) return [];
  const segments = [];
  let node = root;
  for (const raw of pointer.split("/").slice(1)) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(node) && /^\d+$/.test(key)) {
      segments.push(Number(key));
      node = node[Number(key)];
    } else {
      segments.push(key);
      node = node && typeof node === "object" ? node[key] : undefined;
    }
  }
  return segments;
}

// ---------------------------------------------------------------------------------------------
// Reading files

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

// [{index, value}] for each non-empty document; parse errors are reported.
function readDocuments(file) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    report({ file, object: "(file)" }, "", `cannot read: ${error.message}`);
    return [];
  }
  const isJson = /\.json$/i.test(file);
  if (isJson) {
    try {
      JSON.parse(text);
    } catch (error) {
      report({ file, object: "(file)" }, "", `not valid JSON: ${error.message}`);
      return [];
    }
  }
  // JSON is parsed again as YAML 1.2 (of which it is a subset) only to catch duplicate keys,
  // which JSON.parse silently resolves and the API server's strict decoding rejects.
  const docs = parseAllDocuments(text, {
    version: isJson ? "1.2" : "1.1",
    uniqueKeys: true,
  });
  const list = Array.isArray(docs) ? docs : [docs];
  const out = [];
  list.forEach((doc, i) => {
    const where = { file, object: `(document ${i + 1})` };
    for (const error of doc.errors) {
      const line = error.linePos ? ` (line ${error.linePos[0].line})` : "";
      report(
        where,
        "",
        `YAML${line}: ${error.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "")}`,
      );
    }
    if (doc.errors.length > 0) return;
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return; // an empty document, e.g. after `---`
    out.push({ index: i + 1, value });
  });
  return out;
}

// Top-level objects, with `kind: List` (and a bare JSON array) expanded into its items.
function* objectsOf(file, documents) {
  for (const { index, value } of documents) {
    const label = (suffix) => `(document ${index}${suffix})`;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        yield { where: { file, object: label(`, item ${i}`) }, value: value[i] };
      }
      continue;
    }
    if (isObject(value) && value.kind === "List") {
      const where = { file, object: `List ${label("")}` };
      for (const key of Object.keys(value)) {
        if (!["apiVersion", "kind", "metadata", "items"].includes(key)) {
          report(where, formatPath([key]), "unknown field (v1 List)");
        }
      }
      if (value.apiVersion !== "v1") report(where, ".apiVersion", 'a List is apiVersion "v1"');
      if (!Array.isArray(value.items)) {
        report(where, ".items", "required field is missing or not an array");
        continue;
      }
      for (let i = 0; i < value.items.length; i++) {
        yield { where: { file, object: label(`, .items[${i}]`) }, value: value.items[i] };
      }
      continue;
    }
    yield { where: { file, object: label("") }, value };
  }
}

// ---------------------------------------------------------------------------------------------
// Schema validation with kubernetes-models, made strict

const moduleCache = new Map(); // specifier -> module, or null if there is none

async function importOrNull(specifier) {
  if (!moduleCache.has(specifier)) {
    moduleCache.set(specifier, await import(specifier).catch(() => null));
  }
  return moduleCache.get(specifier);
}

// The kubernetes-models class for apiVersion/kind; {custom: true} for a custom resource (no
// schema here); or an error message.
async function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    return { error: "apiVersion and kind are required strings" };
  }
  // "v1" is the core group; "apps/v1" is group/version. Nothing else may reach import().
  if (!/^([a-z0-9]([a-z0-9.-]*[a-z0-9])?\/)?v[0-9]+((alpha|beta)[0-9]+)?$/.test(apiVersion)) {
    return { error: `apiVersion ${JSON.stringify(apiVersion)} is not GROUP/VERSION or VERSION` };
  }
  const mod = await importOrNull(`kubernetes-models/${apiVersion}`);
  if (mod === null) {
    // A group Kubernetes does not serve is a custom resource's (cert-manager.io, ...): no schema
    // to check it against. But a CustomResourceDefinition's group always has a dot, so a group
    // without one ("v1", "apps/v1", "batch/v1") is Kubernetes' own, as is any group that
    // kubernetes-models has at some version: there a miss is a typo or a removed version.
    const group = apiVersion.includes("/") ? apiVersion.slice(0, apiVersion.indexOf("/")) : "";
    const own = !group.includes(".") || (await importOrNull(`kubernetes-models/${group}`)) !== null;
    if (!own) return { custom: true };
  }
  const model = mod && Object.hasOwn(mod, kind) ? mod[kind] : undefined;
  if (typeof model !== "function" || model.kind !== kind || model.apiVersion !== apiVersion) {
    return { error: `no Kubernetes ${apiVersion} ${kind} (unknown apiVersion or kind)` };
  }
  return { model };
}

// Wraps `root` so that every object reached through it records the keys read from it.
function tracker(root) {
  const records = new WeakMap(); // target -> {read: Set, enumerated: bool}
  const proxies = new WeakMap(); // target -> its one proxy
  const wrap = (value) => {
    if (value === null || typeof value !== "object") return value;
    if (proxies.has(value)) return proxies.get(value);
    const record = { read: new Set(), enumerated: false };
    records.set(value, record);
    const proxy = new Proxy(value, {
      get(target, key, receiver) {
        if (typeof key === "string") record.read.add(key);
        return wrap(Reflect.get(target, key, receiver));
      },
      has(target, key) {
        if (typeof key === "string") record.read.add(key);
        return Reflect.has(target, key);
      },
      ownKeys(target) {
        record.enumerated = true;
        return Reflect.ownKeys(target);
      },
    });
    proxies.set(value, proxy);
    return proxy;
  };
  return { proxy: wrap(root), records };
}

// Keys of plain objects that the validator looked into but did not read: unknown fields.
function unknownFields(value, records, segments, out) {
  if (value === null || typeof value !== "object") return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => unknownFields(item, records, [...segments, i], out));
    return;
  }
  const record = records.get(value);
  const judged = record && !record.enumerated && record.read.size > 0;
  for (const key of Object.keys(value)) {
    if (judged && !record.read.has(key)) {
      out.push(segments.concat(key));
      continue; // nothing below an unknown field can be known
    }
    unknownFields(value[key], records, [...segments, key], out);
  }
}

function describeAjvError(error) {
  switch (error.keyword) {
    case "required":
      return { extra: error.params.missingProperty, message: "required field is missing" };
    case "enum":
      return {
        message: `must be one of ${error.params.allowedValues.map((v) => JSON.stringify(v)).join(", ")}`,
      };
    case "type":
      return { message: `must be ${error.params.type}` };
    case "format":
      return { message: `must be in format "${error.params.format}"` };
    default:
      return { message: error.message || `fails "${error.keyword}"` };
  }
}

// `object` against `model`'s schema. `schema` names it in messages; `place` maps a path in
// `object` to where it is in the manifest (for an object built around part of one).
function checkSchema(
  where,
  model,
  object,
  schema = `${object.apiVersion} ${object.kind}`,
  place = (segments) => segments,
) {
  const { proxy, records } = tracker(object);
  let errors = [];
  try {
    model.prototype.validate.call(proxy); // the class's own validator, as model.validate() runs it
  } catch (error) {
    if (!Array.isArray(error.errors)) throw error;
    errors = error.errors;
  }
  const seen = new Set();
  for (const error of errors) {
    // .status is written by the cluster and dropped from create and apply: not judged.
    if (error.instancePath === "/status" || error.instancePath.startsWith("/status/")) continue;
    const segments = pointerToSegments(object, error.instancePath);
    const { extra, message } = describeAjvError(error);
    if (extra !== undefined) segments.push(extra);
    const path = formatPath(place(segments));
    if (seen.has(`${path}\0${message}`)) continue; // ajv repeats some for nullable and oneOf
    seen.add(`${path}\0${message}`);
    report(where, path, message);
  }
  const unknown = [];
  unknownFields(object, records, [], unknown);
  unknown.splice(0, unknown.length, ...unknown.filter((segments) => segments[0] !== "status"));
  for (const segments of unknown) {
    report(where, formatPath(place(segments)), `unknown field (not in the ${schema} schema)`);
  }
}

// An Argo Rollout: `lameduck inject` wires its pod template, so that is checked as strictly as a
// Deployment's. The rest is Argo's own (a custom resource): not judged.
function isRollout(object) {
  return object.apiVersion === "argoproj.io/v1alpha1" && object.kind === "Rollout";
}

async function checkRolloutTemplate(where, object) {
  const template = at(object, ["spec", "template"]);
  if (template === undefined) return; // e.g. spec.workloadRef: the pods come from a Deployment
  const { model } = await modelFor("v1", "PodTemplate");
  const wrapper = { apiVersion: "v1", kind: "PodTemplate", template };
  checkSchema(where, model, wrapper, "core/v1 PodTemplateSpec", (segments) =>
    segments[0] === "template" ? ["spec", ...segments] : segments,
  );
}

// ---------------------------------------------------------------------------------------------
// What the API server checks beyond the schema (the part worth checking offline)

const POD_SPEC_PATHS = {
  Pod: [["spec"]],
  PodTemplate: [["template", "spec"]],
  ReplicationController: [["spec", "template", "spec"]],
  Deployment: [["spec", "template", "spec"]],
  ReplicaSet: [["spec", "template", "spec"]],
  StatefulSet: [["spec", "template", "spec"]],
  DaemonSet: [["spec", "template", "spec"]],
  Job: [["spec", "template", "spec"]],
  CronJob: [["spec", "jobTemplate", "spec", "template", "spec"]],
};

function at(object, segments) {
  let node = object;
  for (const key of segments) node = isObject(node) ? node[key] : undefined;
  return node;
}

// [{spec, segments, labels}] for each pod spec in the object (labels: its template's labels).
function podSpecsOf(object) {
  const out = [];
  const paths = isRollout(object) ? [["spec", "template", "spec"]] : POD_SPEC_PATHS[object.kind];
  for (const segments of paths || []) {
    const spec = at(object, segments);
    if (!isObject(spec)) continue;
    const metadata = at(object, [...segments.slice(0, -1), "metadata"]);
    const labels = isObject(metadata) && isObject(metadata.labels) ? metadata.labels : {};
    out.push({ spec, segments, labels });
  }
  return out;
}

function arrayOf(value) {
  return Array.isArray(value) ? value.filter(isObject) : [];
}

// Each container with its path and role: "init", "sidecar" (init, restartPolicy Always), "app".
function containersOf(spec, segments) {
  const out = [];
  (Array.isArray(spec.initContainers) ? spec.initContainers : []).forEach((c, i) => {
    if (!isObject(c)) return;
    const role = c.restartPolicy === "Always" ? "sidecar" : "init";
    out.push({ container: c, segments: [...segments, "initContainers", i], role });
  });
  (Array.isArray(spec.containers) ? spec.containers : []).forEach((c, i) => {
    if (isObject(c))
      out.push({ container: c, segments: [...segments, "containers", i], role: "app" });
  });
  return out;
}

// RFC 6335 service names, as the API server checks a port's name (IsValidPortName).
function portNameProblem(name) {
  if (name.length > 15) return "must be at most 15 characters";
  if (!/^[a-z0-9-]+$/.test(name)) return "must contain only lowercase letters, digits and '-'";
  if (!/[a-z]/.test(name)) return "must contain at least one letter";
  if (name.startsWith("-") || name.endsWith("-")) return "must not begin or end with '-'";
  if (name.includes("--")) return "must not contain '--'";
  return null;
}

// Every {handler, segments} a container has: probes and lifecycle hooks.
function handlersOf(container, segments) {
  const out = [];
  for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) {
    if (isObject(container[probe]))
      out.push({ handler: container[probe], segments: [...segments, probe] });
  }
  if (isObject(container.lifecycle)) {
    for (const hook of ["postStart", "preStop"]) {
      const handler = container.lifecycle[hook];
      if (isObject(handler)) out.push({ handler, segments: [...segments, "lifecycle", hook] });
    }
  }
  return out;
}

function checkPodSpec(where, spec, segments, claimTemplates = []) {
  const containers = containersOf(spec, segments);
  const names = new Map();
  const volumes = new Set(claimTemplates); // a StatefulSet's volumeClaimTemplates are volumes too
  arrayOf(spec.volumes).forEach((volume, i) => {
    if (typeof volume.name !== "string") return;
    if (volumes.has(volume.name)) {
      report(
        where,
        formatPath([...segments, "volumes", i, "name"]),
        `duplicate volume name "${volume.name}"`,
      );
    }
    volumes.add(volume.name);
  });
  for (const { container, segments: cs, role } of containers) {
    if (typeof container.name === "string") {
      if (names.has(container.name)) {
        report(
          where,
          formatPath([...cs, "name"]),
          `duplicate container name "${container.name}" (also ${names.get(container.name)})`,
        );
      } else {
        names.set(container.name, formatPath(cs));
      }
    }
    if (role === "init" && container.restartPolicy !== undefined) {
      report(
        where,
        formatPath([...cs, "restartPolicy"]),
        'an init container\'s restartPolicy may only be "Always" (a native sidecar)',
      );
    }
    if (role === "app" && container.restartPolicy !== undefined) {
      report(
        where,
        formatPath([...cs, "restartPolicy"]),
        "only init containers take restartPolicy (Always makes a native sidecar, Kubernetes 1.29+)",
      );
    }
    if (role === "init" && container.restartPolicy === undefined) {
      for (const field of ["lifecycle", "livenessProbe", "readinessProbe", "startupProbe"]) {
        if (container[field] !== undefined) {
          report(
            where,
            formatPath([...cs, field]),
            "not allowed on an init container without restartPolicy: Always",
          );
        }
      }
    }
    const ports = new Map(); // name -> number
    arrayOf(container.ports).forEach((port, i) => {
      if (typeof port.name !== "string") return;
      const problem = portNameProblem(port.name);
      if (problem)
        report(
          where,
          formatPath([...cs, "ports", i, "name"]),
          `port name "${port.name}" ${problem}`,
        );
      if (ports.has(port.name))
        report(
          where,
          formatPath([...cs, "ports", i, "name"]),
          `duplicate port name "${port.name}"`,
        );
      ports.set(port.name, port.containerPort);
    });
    arrayOf(container.volumeMounts).forEach((mount, i) => {
      if (typeof mount.name === "string" && !volumes.has(mount.name)) {
        report(
          where,
          formatPath([...cs, "volumeMounts", i, "name"]),
          `no volume named "${mount.name}" in ${formatPath([...segments, "volumes"])}${claimTemplates.length ? " or .spec.volumeClaimTemplates" : ""}`,
        );
      }
    });
    // A named port in a probe or hook is looked up in that container's own ports only.
    for (const { handler, segments: hs } of handlersOf(container, cs)) {
      for (const action of ["httpGet", "tcpSocket", "grpc"]) {
        const port = isObject(handler[action]) ? handler[action].port : undefined;
        if (typeof port === "string" && !/^\d+$/.test(port) && !ports.has(port)) {
          report(
            where,
            formatPath([...hs, action, "port"]),
            `container "${container.name}" has no port named "${port}" (names resolve in the container itself; use the number)`,
          );
        }
      }
    }
  }
}

function checkSelector(where, object) {
  if (!["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"].includes(object.kind)) return;
  const selector = at(object, ["spec", "selector"]);
  const labels = at(object, ["spec", "template", "metadata", "labels"]);
  if (!isObject(selector) || !isObject(selector.matchLabels)) return;
  for (const [key, value] of Object.entries(selector.matchLabels)) {
    if (!isObject(labels) || labels[key] !== value) {
      report(
        where,
        formatPath(["spec", "selector", "matchLabels", key]),
        "selector does not match the pod template's labels",
      );
    }
  }
}

// A Service's selector and named targetPorts, against the pod templates of the same file.
function checkServices(file, entries) {
  const templates = [];
  for (const { object } of entries) {
    for (const pod of podSpecsOf(object))
      templates.push({ ...pod, owner: `${object.kind}/${at(object, ["metadata", "name"])}` });
  }
  if (templates.length === 0) return; // a file of Services alone: nothing to match against
  for (const { where, object } of entries) {
    if (object.kind !== "Service" || object.apiVersion !== "v1") continue;
    const selector = at(object, ["spec", "selector"]);
    if (!isObject(selector) || Object.keys(selector).length === 0) continue;
    const matched = templates.filter((t) =>
      Object.entries(selector).every(([k, v]) => t.labels[k] === v),
    );
    if (matched.length === 0) {
      report(where, ".spec.selector", "matches no pod template in this file");
      continue;
    }
    arrayOf(at(object, ["spec", "ports"])).forEach((port, i) => {
      const target = port.targetPort;
      if (typeof target !== "string" || /^\d+$/.test(target)) return;
      const protocol = port.protocol ?? "TCP";
      const path = formatPath(["spec", "ports", i, "targetPort"]);
      let resolved = false;
      for (const t of matched) {
        const declaring = namedPortOwners(t.spec, t.segments, target, protocol);
        if (declaring.length > 0) resolved = true;
        const problem = bypassProblem(declaring, target, t.owner);
        if (problem) report(where, path, problem);
      }
      if (!resolved) {
        report(
          where,
          path,
          `no container of ${matched.map((t) => t.owner).join(", ")} has a ${protocol} port named "${target}"`,
        );
      }
    });
  }
}

// The containers that declare a port named `name` for `protocol`, in the order Kubernetes'
// FindPort (pkg/api/v1/pod/util.go) searches them for a Service's named targetPort: the regular
// containers first, then the native sidecars; the first one wins. Other init containers never
// serve. (A native sidecar's name resolves from Kubernetes 1.33 on: kubernetes/kubernetes#128850.)
function namedPortOwners(spec, segments, name, protocol) {
  const declares = ({ container }) =>
    arrayOf(container.ports).some((p) => p.name === name && (p.protocol ?? "TCP") === protocol);
  const containers = containersOf(spec, segments).filter(declares);
  return [
    ...containers.filter((c) => c.role === "app"),
    ...containers.filter((c) => c.role === "sidecar"),
  ];
}

// A named targetPort that a sidecar (or lameduck) and another container both declare: the
// Service reaches whichever FindPort finds first, so its traffic can bypass the proxy. Under the
// wiring of k8s/README.md lameduck's port carries the Service's name, and the app's port another.
function bypassProblem(declaring, name, owner) {
  const proxy =
    declaring.find((c) => c.container.name === "lameduck") ??
    declaring.find((c) => c.role === "sidecar");
  if (!proxy || declaring.length < 2) return null;
  const describe = (c) =>
    `${c.role === "sidecar" ? "native sidecar" : "container"} "${c.container.name}"`;
  const first = declaring[0];
  const other = first === proxy ? declaring.find((c) => c !== proxy) : first;
  const both = `"${name}" names a port of both ${describe(first)} and ${describe(first === proxy ? other : proxy)} (${owner})`;
  const rename = `give "${other.container.name}"'s port another name${portNameProblem(`app-${name}`) ? "" : ` (e.g. "app-${name}")`}`;
  if (first !== proxy) {
    const rule =
      proxy.role === "sidecar"
        ? "Kubernetes resolves a Service's named targetPort in the regular containers first"
        : "Kubernetes takes the first container that declares the name";
    return `${both}: ${rule}, so the Service would send its traffic to "${first.container.name}" directly, bypassing "${proxy.container.name}"; ${rename}`;
  }
  return `${both}: the Service reaches "${proxy.container.name}" only because it is listed first (Kubernetes takes the first container that declares the name); ${rename}`;
}

// ---------------------------------------------------------------------------------------------
// --lameduck: the wiring conventions of k8s/README.md

const DEFAULTS = { "drain-delay": 5000, "drain-timeout": 25000, "app-exit-timeout": 10000 };

function parseDurationMs(text) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(String(text));
  if (!m) return null;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2]];
}

// --name=VALUE or --name VALUE from a container's args (and command, after the binary).
function optionOf(args, name) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1];
    if (typeof args[i] === "string" && args[i].startsWith(`--${name}=`))
      return args[i].slice(name.length + 3);
  }
  return undefined;
}

// The part of `lameduck drain ...` that is drain's own: up to `--`, after which `--then` names
// the app's own preStop command, run once the drain is done.
function drainOwnArgs(command) {
  const end = command.indexOf("--");
  return end < 0 ? command : command.slice(0, end);
}

// A preStop handler that waits for lameduck's drain: `lameduck drain --wait` over loopback (the
// default) or the admin socket, or kubelet's `GET /drain?wait=1`. Returns a problem or null.
function drainWaitProblem(handler, adminSocket, ms) {
  if (!isObject(handler)) return "no preStop hook";
  if (isObject(handler.exec) && Array.isArray(handler.exec.command)) {
    const cmd = drainOwnArgs(handler.exec.command);
    if (!/(^|\/)lameduck$/.test(cmd[0] || "") || cmd[1] !== "drain" || !cmd.includes("--wait")) {
      return "the exec hook is not `lameduck drain --wait`";
    }
    const socket = optionOf(cmd, "admin-socket");
    if (socket !== undefined && socket !== adminSocket) {
      return `--admin-socket ${socket} is not where this container sees lameduck's socket (${adminSocket ?? "none"})`;
    }
    const admin = optionOf(cmd, "admin");
    if (admin !== undefined && !/^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(admin)) {
      return `--admin ${admin} is not loopback: without a token lameduck refuses it (403)`;
    }
    const timeout = optionOf(cmd, "timeout");
    if (timeout !== undefined && timeout !== "0") {
      const t = parseDurationMs(timeout);
      if (t === null) return `--timeout ${timeout} is not a duration`;
      if (t < Math.max(ms["drain-delay"], ms["drain-timeout"])) {
        return `--timeout ${timeout} gives up before the drain can end (--drain-delay and --drain-timeout)`;
      }
    }
    return null;
  }
  if (isObject(handler.httpGet)) {
    if (!/^\/drain\?(.*&)?wait=1(&|$)/.test(handler.httpGet.path || ""))
      return "the httpGet hook is not GET /drain?wait=1";
    const auth = arrayOf(handler.httpGet.httpHeaders).some(
      (h) => /^authorization$/i.test(h.name ?? "") && /^Bearer \S+$/.test(h.value ?? ""),
    );
    if (!auth)
      return "kubelet sends httpGet hooks from the node: it needs an `Authorization: Bearer TOKEN` header";
    return null;
  }
  return "the preStop hook neither execs `lameduck drain --wait` nor GETs /drain?wait=1";
}

function checkLameduckWiring(where, spec, segments) {
  const containers = containersOf(spec, segments);
  const lameduck = containers.find((c) => c.container.name === "lameduck");
  if (!lameduck) return;
  const { container: ld, segments: ls, role } = lameduck;
  const args = [
    ...(Array.isArray(ld.command) ? ld.command.slice(1) : []),
    ...(Array.isArray(ld.args) ? ld.args : []),
  ];
  const p = (...rest) => formatPath([...ls, ...rest]);
  if (role === "init")
    report(
      where,
      p("restartPolicy"),
      "lameduck as an init container must be a native sidecar: restartPolicy: Always",
    );
  if (typeof ld.image !== "string" || !ld.image.startsWith("ghcr.io/lameduck/lameduck:")) {
    report(where, p("image"), "expected the image ghcr.io/lameduck/lameduck:VERSION");
  }
  const ready = at(ld, ["readinessProbe", "httpGet"]);
  if (!isObject(ready) || ready.path !== "/ready")
    report(
      where,
      p("readinessProbe"),
      "lameduck owns readiness: readinessProbe httpGet /ready on its admin port",
    );
  // Which volume holds the admin socket, and where each container sees it.
  const socket = optionOf(args, "admin-socket");
  const socketDir = socket ? socket.slice(0, socket.lastIndexOf("/")) : undefined;
  const socketMount = socketDir && arrayOf(ld.volumeMounts).find((m) => m.mountPath === socketDir);
  if (socket && !socketMount)
    report(
      where,
      p("volumeMounts"),
      `--admin-socket=${socket}: no volume is mounted at ${socketDir}`,
    );
  // The durations the drain may take, from lameduck's args.
  const ms = {};
  for (const [name, fallback] of Object.entries(DEFAULTS)) {
    const text = optionOf(args, name);
    ms[name] = text === undefined ? fallback : parseDurationMs(text);
    if (ms[name] === null) {
      report(where, p("args"), `--${name}=${text}: not a duration`);
      ms[name] = fallback;
    }
  }
  // The app container(s) must hold their SIGTERM until the drain is done. A container is taken
  // for wired to lameduck when it mounts a volume of lameduck's or its preStop talks to
  // lameduck; other containers (a database proxy, say) keep their own shutdown. At least one
  // container must be wired: otherwise kubelet sends the app SIGTERM at once.
  const ldVolumes = new Set(arrayOf(ld.volumeMounts).map((m) => m.name));
  let wired = 0;
  let thenSleepMs = 0; // the longest `--then-sleep` after a drain: the grace period covers it
  for (const { container, segments: cs, role: r } of containers) {
    if (r !== "app" || container === ld) continue;
    const hook = at(container, ["lifecycle", "preStop"]);
    const command = at(hook, ["exec", "command"]);
    const talksToLameduck =
      (Array.isArray(command) && /(^|\/)lameduck$/.test(command[0] ?? "")) ||
      /^\/drain(\?|$)/.test(at(hook, ["httpGet", "path"]) ?? "");
    const mounts = arrayOf(container.volumeMounts).some((m) => ldVolumes.has(m.name));
    if (!talksToLameduck && !mounts) continue;
    const mount =
      socketMount && arrayOf(container.volumeMounts).find((m) => m.name === socketMount.name);
    const appSocket = mount
      ? `${mount.mountPath}/${socket.slice(socketDir.length + 1)}`
      : undefined;
    const problem = drainWaitProblem(hook, appSocket, ms);
    const thenSleep = Array.isArray(command)
      ? optionOf(drainOwnArgs(command), "then-sleep")
      : undefined;
    if (thenSleep !== undefined) {
      const t = parseDurationMs(thenSleep);
      if (t === null) {
        report(
          where,
          formatPath([...cs, "lifecycle", "preStop", "exec", "command"]),
          `--then-sleep ${thenSleep}: not a duration`,
        );
      } else {
        thenSleepMs = Math.max(thenSleepMs, t);
      }
    }
    if (problem) {
      report(
        where,
        formatPath([...cs, "lifecycle", "preStop"]),
        `container "${container.name}" must wait for the drain in its preStop: ${problem}`,
      );
    }
    wired++;
  }
  if (wired === 0) {
    report(
      where,
      formatPath([...segments, "containers"]),
      "no app container waits for the drain in its preStop (exec lameduck drain --wait, or httpGet /drain?wait=1): kubelet would send the app SIGTERM at once",
    );
  }
  if (role === "app" && spec.shareProcessNamespace !== true) {
    const problem = drainWaitProblem(at(ld, ["lifecycle", "preStop"]), socket, ms);
    if (problem)
      report(
        where,
        p("lifecycle", "preStop"),
        `a classic lameduck sidecar waits for its own drain in preStop: ${problem}`,
      );
  }
  // The grace period must cover the drain and the app's exit.
  const needed = Math.ceil(
    (ms["drain-delay"] + ms["drain-timeout"] + thenSleepMs + ms["app-exit-timeout"]) / 1000,
  );
  const grace = spec.terminationGracePeriodSeconds ?? 30;
  if (grace < needed) {
    const sum = `drain delay + drain timeout + ${thenSleepMs > 0 ? "the preStop's --then-sleep + " : ""}app exit`;
    report(
      where,
      formatPath([...segments, "terminationGracePeriodSeconds"]),
      `${grace} s is less than ${sum} = ${needed} s`,
    );
  }
}

// ---------------------------------------------------------------------------------------------

async function main(argv) {
  const lameduck = argv.includes("--lameduck");
  const files = argv.filter((a) => a !== "--lameduck");
  if (files.length === 0 || files.some((f) => f.startsWith("-"))) {
    process.stderr.write(
      "usage: node validate.mjs [--lameduck] FILE...   (YAML or JSON manifests)\n",
    );
    return 2;
  }
  let objects = 0;
  const unchecked = []; // custom resources: no schema here
  for (const file of files) {
    const entries = [];
    for (const { where, value } of objectsOf(file, readDocuments(file))) {
      if (!isObject(value)) {
        report(where, "", "not an object");
        continue;
      }
      const name = at(value, ["metadata", "name"]) ?? at(value, ["metadata", "generateName"]);
      where.object = `${value.kind ?? "(no kind)"}/${name ?? "(no name)"} ${where.object}`;
      objects++;
      if (isRollout(value)) {
        await checkRolloutTemplate(where, value);
      } else {
        const { model, custom, error } = await modelFor(value.apiVersion, value.kind);
        if (error) {
          report(where, ".apiVersion", error);
          continue;
        }
        if (custom) {
          unchecked.push(`${file}: ${where.object}: ${value.apiVersion} ${value.kind}`);
          continue;
        }
        checkSchema(where, model, value);
        checkSelector(where, value);
      }
      const claims = arrayOf(at(value, ["spec", "volumeClaimTemplates"])).map((c) =>
        at(c, ["metadata", "name"]),
      );
      for (const { spec, segments } of podSpecsOf(value)) {
        checkPodSpec(where, spec, segments, value.kind === "StatefulSet" ? claims : []);
        if (lameduck) checkLameduckWiring(where, spec, segments);
      }
      entries.push({ where, object: value });
    }
    checkServices(file, entries);
  }
  for (const line of problems) process.stdout.write(`${line}\n`);
  for (const line of unchecked) process.stderr.write(`note: ${line}: not checked (no schema)\n`);
  let summary = `${objects} object${objects === 1 ? "" : "s"} in ${files.length} file${files.length === 1 ? "" : "s"}`;
  if (unchecked.length > 0) summary += `, ${unchecked.length} not checked (no schema)`;
  if (problems.length > 0) {
    process.stderr.write(
      `validate: ${problems.length} problem${problems.length === 1 ? "" : "s"} in ${summary}\n`,
    );
    return 1;
  }
  process.stderr.write(`validate: ${summary}, no problems\n`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
