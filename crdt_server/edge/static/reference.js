// The API reference page: reads the OpenAPI document next to it and lists every operation.
// No framework, no CDN; text goes in with textContent only (never as HTML).
"use strict";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function resolve(spec, schema) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return spec.components.schemas[name] || schema;
  }
  return schema;
}

function block(spec, title, content) {
  const details = el("details");
  details.appendChild(el("summary", title));
  for (const [type, media] of Object.entries(content || {})) {
    details.appendChild(el("div", type));
    details.appendChild(el("pre", JSON.stringify(resolve(spec, media.schema), null, 2)));
  }
  return details;
}

function render(spec) {
  const root = document.getElementById("reference");
  root.textContent = "";
  root.appendChild(el("h1", spec.info.title + " " + spec.info.version));
  root.appendChild(el("p", spec.info.description));
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const box = el("section", undefined, "op");
      const head = el("div");
      head.appendChild(el("span", method, "method " + method));
      head.appendChild(el("span", path, "path"));
      head.appendChild(el("span", op.operationId, "id"));
      box.appendChild(head);
      box.appendChild(el("p", op.summary));
      if (op.parameters && op.parameters.length) {
        const table = el("table");
        for (const p of op.parameters) {
          const row = el("tr");
          row.appendChild(el("td", p.name));
          row.appendChild(el("td", p.in));
          row.appendChild(el("td", JSON.stringify(p.schema)));
          table.appendChild(row);
        }
        box.appendChild(table);
      }
      if (op.requestBody) box.appendChild(block(spec, "request body", op.requestBody.content));
      for (const [status, answer] of Object.entries(op.responses)) {
        box.appendChild(block(spec, status + " " + answer.description, answer.content));
      }
      root.appendChild(box);
    }
  }
}

fetch(document.body.dataset.spec)
  .then((response) => response.json())
  .then(render)
  .catch((error) => {
    document.getElementById("reference").textContent = "Could not load the API description: " + error;
  });
