"""The column-lineage page: one static HTML file, no server, no network.

Pick a dataset and a column (or open ``lineage.html#gold.customer_360:lifetime_value``) and the
page shows the tree of columns it is computed from, layer by layer, down to the bronze tables
and the source system each was loaded from; a second tab lists the dataset registry. The graph is
embedded as JSON, read from the event files by lakehouse/observability/lineage/graph.py.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from typing import Any

from lakehouse.observability.lineage.graph import LAYERS, Lineage


def _key(node_id: Any) -> str:
    return f"{node_id.namespace}|{node_id.name}"


def payload(lineage: Lineage, registry: list[dict[str, Any]]) -> dict[str, Any]:
    order = {layer: i for i, layer in enumerate(LAYERS)}
    datasets = sorted(lineage.datasets.values(), key=lambda d: (order.get(d.layer, 99), d.id.name))
    return {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "datasets": [
            {
                "key": _key(d.id),
                "name": d.id.name,
                "namespace": d.id.namespace,
                "layer": d.layer,
                "system": d.system,
                "fields": d.fields or sorted({f for (ds, f) in lineage.edges if ds == d.id}),
                "aliases": sorted(str(a) for a in d.aliases),
                "written_by": d.written_by,
            }
            for d in datasets
            if d.layer != "dq"
        ],
        "edges": {
            f"{_key(ds)}::{column}": [[_key(u), uf] for u, uf in upstream]
            for (ds, column), upstream in lineage.edges.items()
        },
        "registry": registry,
        "runs": len(lineage.runs),
        "unresolved": lineage.unresolved,
    }


def render(lineage: Lineage, registry: list[dict[str, Any]], title: str = "Column lineage") -> str:
    data = json.dumps(payload(lineage, registry), sort_keys=True).replace("</", "<\\/")
    return TEMPLATE.replace("__TITLE__", html.escape(title)).replace("__DATA__", data)


TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
  :root { --source:#6b7280; --bronze:#b45309; --silver:#64748b; --gold:#ca8a04;
          --warehouse:#2563eb; --other:#9ca3af; }
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #111827; background: #f9fafb; }
  header { background: #111827; color: #f9fafb; padding: 12px 20px; display: flex; gap: 24px;
           align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header nav a { color: #d1d5db; margin-right: 14px; cursor: pointer; text-decoration: none; }
  header nav a.active { color: #fff; border-bottom: 2px solid #fbbf24; }
  header .meta { margin-left: auto; color: #9ca3af; font-size: 12px; }
  main { display: flex; min-height: calc(100vh - 48px); }
  aside { width: 340px; border-right: 1px solid #e5e7eb; background: #fff; overflow: auto;
          max-height: calc(100vh - 48px); }
  aside h3 { margin: 12px 14px 4px; font-size: 12px; text-transform: uppercase; color: #6b7280; }
  aside .ds { padding: 3px 14px; cursor: pointer; }
  aside .ds:hover, aside .col:hover { background: #f3f4f6; }
  aside .ds.sel { background: #fef3c7; font-weight: 600; }
  aside .col { padding: 2px 14px 2px 34px; cursor: pointer; color: #374151; }
  aside .col.sel { background: #fde68a; font-weight: 600; }
  section { flex: 1; padding: 16px 24px; overflow: auto; }
  .badge { display: inline-block; min-width: 64px; text-align: center; border-radius: 4px;
           color: #fff; font-size: 11px; padding: 1px 6px; margin-right: 8px;
           text-transform: uppercase; }
  ul.tree { list-style: none; padding-left: 22px; margin: 2px 0; border-left: 1px dashed #d1d5db; }
  ul.tree.root { border-left: 0; padding-left: 0; }
  li.node { margin: 3px 0; }
  .node code { font-size: 13px; }
  .node .sys { color: #6b7280; font-size: 12px; margin-left: 6px; }
  .summary { background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 10px 14px;
             margin-bottom: 14px; }
  table { border-collapse: collapse; background: #fff; width: 100%; }
  th, td { border-bottom: 1px solid #e5e7eb; padding: 5px 8px; text-align: left; font-size: 13px;
           vertical-align: top; }
  th { background: #f3f4f6; position: sticky; top: 0; }
  .muted { color: #6b7280; }
</style>
</head>
<body>
<header>
  <h1>__TITLE__</h1>
  <nav><a id="tab-lineage" class="active">Columns</a><a id="tab-registry">Datasets</a></nav>
  <span class="meta" id="meta"></span>
</header>
<main id="lineage-view">
  <aside id="datasets"></aside>
  <section id="trace"><p class="muted">Pick a dataset, then a column, to see where it comes
  from.</p></section>
</main>
<main id="registry-view" style="display:none"><section id="registry"></section></main>
<script id="lineage-data" type="application/json">__DATA__</script>
<script>
const DATA = JSON.parse(document.getElementById("lineage-data").textContent);
const BY_KEY = Object.fromEntries(DATA.datasets.map(d => [d.key, d]));
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
};
const badge = layer => { const b = el("span", {class: "badge"}, layer);
  b.style.background = `var(--${layer}, var(--other))`; return b; };
document.getElementById("meta").textContent =
  `${DATA.datasets.length} datasets · ${DATA.runs} runs · generated ${DATA.generated_at}`;

let selected = {key: null, field: null};

function renderDatasets() {
  const aside = document.getElementById("datasets");
  aside.replaceChildren();
  let layer = null;
  for (const d of DATA.datasets) {
    if (d.layer !== layer) { layer = d.layer; aside.append(el("h3", {}, layer)); }
    const row = el("div", {class: "ds" + (d.key === selected.key ? " sel" : ""), "data-key": d.key},
                   d.name);
    row.onclick = () => select(d.key, null);
    aside.append(row);
    if (d.key === selected.key) {
      for (const f of d.fields) {
        const col = el("div", {class: "col" + (f === selected.field ? " sel" : "")}, f);
        col.onclick = () => select(d.key, f);
        aside.append(col);
      }
    }
  }
}

function node(key, field, path) {
  const d = BY_KEY[key] || {name: key, layer: "other"};
  const li = el("li", {class: "node", "data-layer": d.layer});
  li.append(badge(d.layer), el("code", {}, `${d.name}.${field}`));
  if (d.system) li.append(el("span", {class: "sys"}, `from ${d.system} (${d.namespace})`));
  const ups = DATA.edges[`${key}::${field}`] || [];
  const id = `${key}::${field}`;
  if (ups.length && !path.has(id)) {
    const ul = el("ul", {class: "tree"});
    for (const [k, f] of ups) ul.append(node(k, f, new Set([...path, id])));
    li.append(ul);
  } else if (!ups.length && d.layer !== "source") {
    li.append(el("span", {class: "sys"}, DATA.edges[id] ? "(a constant or load metadata)"
                                                        : "(no column lineage recorded)"));
  }
  return li;
}

function leaves(key, field, seen = new Set()) {
  const id = `${key}::${field}`;
  if (seen.has(id)) return [];
  seen.add(id);
  const ups = DATA.edges[id] || [];
  return [[key, field], ...ups.flatMap(([k, f]) => leaves(k, f, seen))];
}

function renderTrace() {
  const section = document.getElementById("trace");
  section.replaceChildren();
  if (!selected.key || !selected.field) {
    section.append(el("p", {class: "muted"}, "Pick a column of the selected dataset."));
    return;
  }
  const d = BY_KEY[selected.key];
  const all = leaves(selected.key, selected.field);
  const count = layer => new Set(all.filter(([k]) => (BY_KEY[k] || {}).layer === layer)
                                    .map(([k, f]) => `${BY_KEY[k].name}.${f}`));
  const bronze = [...count("bronze")].sort(), sources = [...count("source")].sort();
  const systems = [...new Set(all.map(([k]) => BY_KEY[k]).filter(x => x && x.system)
                                  .map(x => x.system))].sort();
  section.append(el("div", {class: "summary", id: "summary"},
    el("h2", {}, `${d.name}.${selected.field}`),
    el("div", {}, `Bronze columns: ${bronze.join(", ") || "none"}`),
    el("div", {}, `Source fields: ${sources.join(", ") || "none"}`),
    el("div", {}, `Source systems: ${systems.join(", ") || "none"}`)));
  const ul = el("ul", {class: "tree root", id: "tree"});
  ul.append(node(selected.key, selected.field, new Set()));
  section.append(ul);
}

function select(key, field) {
  selected = {key, field};
  if (key) history.replaceState(null, "", `#${BY_KEY[key].name}` + (field ? `:${field}` : ""));
  renderDatasets();
  renderTrace();
}

function fromHash() {
  const [name, field] = decodeURIComponent(location.hash.slice(1)).split(":");
  const d = DATA.datasets.find(x => x.name === name);
  if (d) select(d.key, field || null); else renderDatasets();
}

function renderRegistry() {
  const section = document.getElementById("registry");
  const cols = ["name", "layer", "location", "owner", "kind", "strategy", "personal_data",
                "description"];
  const table = el("table", {id: "registry-table"});
  table.append(el("tr", {}, ...cols.map(c => el("th", {}, c))));
  for (const r of DATA.registry) table.append(el("tr", {}, ...cols.map(c =>
    el("td", {}, c === "location" ? el("code", {}, r[c] || "") : (r[c] || "")))));
  section.replaceChildren(el("p", {class: "muted"},
    "Generated from the dbt manifest, the dlt pipelines and lakehouse.yml."), table);
}

function tab(name) {
  document.getElementById("lineage-view").style.display = name === "lineage" ? "flex" : "none";
  document.getElementById("registry-view").style.display = name === "registry" ? "flex" : "none";
  document.getElementById("tab-lineage").className = name === "lineage" ? "active" : "";
  document.getElementById("tab-registry").className = name === "registry" ? "active" : "";
}
document.getElementById("tab-lineage").onclick = () => tab("lineage");
document.getElementById("tab-registry").onclick = () => tab("registry");
renderRegistry();
fromHash();
window.addEventListener("hashchange", fromHash);
</script>
</body>
</html>
"""
