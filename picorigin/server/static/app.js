// picorigin's pages: search by drop, paste, file or URL; add and remove images.
// No framework and no build step. Text from the server only ever goes in through textContent,
// never innerHTML, so a crafted URI or page title cannot inject markup.
"use strict";

const KINDS = ["exact", "near_duplicate", "partial", "similar"];
const COPY_KINDS = new Set(["exact", "near_duplicate", "partial"]);
const KIND_LABEL = {exact: "exact copy", near_duplicate: "near-duplicate", partial: "partial", similar: "similar"};
const GROUP_TITLE = {exact: "Exact copies", near_duplicate: "Near-duplicates",
                     partial: "Partial matches", similar: "Similar images"};
const GROUP_HINT = {
  exact: "The same pixels.",
  near_duplicate: "The same picture resized, recompressed, recoloured or lightly edited.",
  partial: "Your image is a crop of these, or shares a region with them (boxed).",
  similar: "Not copies: images that look alike.",
};
const ORIENTATION = {rot90: "rotated 90°", rot180: "rotated 180°", rot270: "rotated 270°",
                     mirror: "mirrored", mirror_rot90: "mirrored, rotated 90°",
                     mirror_rot180: "mirrored, rotated 180°", mirror_rot270: "mirrored, rotated 270°"};

// el("p", {class: "x"}, "text", child) -> element. Attributes starting with "on" are listeners.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function isWebLink(value) {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch (_) {
    return false;
  }
}

function setStatus(text, kind) {
  const status = document.getElementById("status");
  if (!status) return;
  status.replaceChildren(...[text].flat());
  status.className = "status" + (kind ? " " + kind : "");
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON: fall through */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

function apiKeyHeaders(ask) {
  if (document.body.dataset.keyRequired !== "yes") return {};
  const field = document.getElementById("api-key");
  let key = (field && field.value.trim()) || sessionStorage.getItem("picorigin-api-key") || "";
  if (!key && ask) key = (window.prompt("This server needs its API key for changes:") || "").trim();
  if (key) sessionStorage.setItem("picorigin-api-key", key);
  return key ? {"X-API-Key": key} : {};
}

function formatBytes(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(1) + " MB";
  if (n >= 1e3) return Math.round(n / 1e3) + " kB";
  return n + " bytes";
}

function shortUri(uri) {
  if (!uri) return "";
  if (isWebLink(uri)) {
    const url = new URL(uri);
    const tail = url.pathname.split("/").filter(Boolean).pop() || "";
    return url.host + (tail ? " › " + decodeURIComponent(tail) : "");
  }
  return uri.split(/[\\/]/).pop() || uri;
}

function creatorName(creator) {
  if (!creator) return null;
  if (typeof creator === "string") return creator;
  return creator.name || null;
}

// An image with a box drawn over it. The box is placed in percentages of the image's own pixel
// size (width x height), so it stays on the right region however large the image is displayed.
function boxedImage(src, box, width, height, alt) {
  const frame = el("span", {class: "boxed"}, el("img", {src, alt: alt || "", loading: "lazy"}));
  if (box && width && height) {
    const [x0, y0, x1, y1] = box;
    const pct = (v, total) => Math.max(0, Math.min(100, (100 * v) / total)).toFixed(3) + "%";
    const div = el("span", {class: "box", "aria-hidden": "true"});
    div.style.left = pct(x0, width);
    div.style.top = pct(y0, height);
    div.style.width = pct(x1 - x0, width);
    div.style.height = pct(y1 - y0, height);
    frame.append(div);
  }
  return frame;
}

function pagesList(pages) {
  if (!Array.isArray(pages) || pages.length === 0) return null;
  const shown = pages.slice(0, 4).map((page) => {
    const url = typeof page === "string" ? page : (page && (page.url || page.page_url));
    const title = typeof page === "string" ? null : (page && (page.title || page.page_title));
    const text = title || shortUri(url) || "page";
    return el("li", {}, isWebLink(url)
      ? el("a", {href: url, target: "_blank", rel: "noopener noreferrer nofollow", title: url}, text)
      : el("span", {title: url || ""}, text));
  });
  if (pages.length > shown.length) shown.push(el("li", {class: "muted"}, `+ ${pages.length - shown.length} more`));
  return el("div", {class: "pages"}, el("span", {class: "label"}, "Appears on"), el("ul", {}, shown));
}

function matchCard(match, query) {
  const thumb = `/api/images/${encodeURIComponent(match.id)}/thumbnail`;
  const href = `/images/${encodeURIComponent(match.id)}`;
  const isPartial = match.kind === "partial" && (match.query_box || match.match_box);
  let picture;
  if (isPartial) {
    picture = el("div", {class: "pair"},
      el("figure", {}, boxedImage(query.src, match.query_box, query.width, query.height, "Your image"),
         el("figcaption", {}, "yours")),
      el("figure", {}, el("a", {href}, boxedImage(thumb, match.match_box, match.width, match.height,
                                                   "Matching image")),
         el("figcaption", {}, "match")));
  } else {
    picture = el("a", {class: "thumb", href}, el("img", {src: thumb, alt: "Matching image", loading: "lazy"}));
  }
  const badges = el("div", {class: "badges"},
    el("span", {class: `badge kind kind-${match.kind}`}, KIND_LABEL[match.kind] || match.kind),
    match.larger_than_query ? el("span", {class: "badge larger", title: "Larger than your image"}, "larger") : null,
    match.upscaled ? el("span", {class: "badge", title: "Larger, but only an enlargement of a smaller copy"}, "upscaled") : null,
    isOriginal(match, query) ? el("span", {class: "badge original", title: "Most likely the original"}, "likely original") : null,
    ORIENTATION[match.orientation] ? el("span", {class: "badge"}, ORIENTATION[match.orientation]) : null);
  const facts = [];
  if (typeof match.score === "number") facts.push(`score ${Math.round(match.score * 100)}%`);
  if (match.width && match.height) facts.push(`${match.width} × ${match.height}`);
  if (match.format) facts.push(match.format);
  const creator = creatorName(match.creator);
  const others = Array.isArray(match.uris) ? match.uris.length - 1 : 0;
  return el("article", {class: "card", "data-kind": match.kind, "data-id": match.id},
    picture,
    el("div", {class: "card-body"},
      badges,
      el("p", {class: "facts"}, facts.join(" · ")),
      el("p", {class: "uri", title: match.uri || ""},
        el("a", {href}, shortUri(match.uri) || `image ${match.id}`),
        others > 0 ? el("span", {class: "muted"}, ` +${others} more`) : null),
      creator ? el("p", {class: "creator"}, "by ", el("strong", {}, creator),
        match.creator.source ? el("span", {class: "muted"}, ` (${match.creator.source})`) : null) : null,
      licenceLine(match.rights),
      labelLine(match.labels),
      pagesList(match.pages)));
}

// The licence a match's file or pages claim, with where the claim came from; a link only for
// http(s) (a recorded "javascript:" value stays text).
function licenceLine(rights) {
  if (!rights || !rights.license) return null;
  const claim = (rights.sources || []).find((c) => c.field === "license") || {};
  const value = isWebLink(rights.license)
    ? el("a", {href: rights.license, rel: "noopener noreferrer nofollow"}, rights.license)
    : rights.license;
  const conflict = (rights.conflicts || []).includes("license");
  return el("p", {class: "licence"}, "licence ", value,
    claim.source ? el("span", {class: "muted"}, ` (${claim.source}${conflict ? "; sources disagree" : ""})`) : null);
}

function isOriginal(match, query) {
  return Boolean(query.likely_original && query.likely_original.id === match.id);
}

function labelLine(labels) {
  if (!Array.isArray(labels) || labels.length === 0) return null;
  const text = labels.slice(0, 3).map((l) => `${l.name} ${Math.round(l.p * 100)}%`).join(", ");
  return el("p", {class: "labels muted"}, text);
}

function renderResults(result, query) {
  const results = document.getElementById("results");
  const matches = Array.isArray(result.matches) ? result.matches : [];
  const copies = matches.filter((m) => COPY_KINDS.has(m.kind));
  const parts = [];
  const elapsed = typeof result.elapsed_ms === "number" ? ` in ${Math.round(result.elapsed_ms)} ms` : "";
  parts.push(el("p", {class: "summary muted"},
    `${copies.length} ${copies.length === 1 ? "copy" : "copies"}` +
    (matches.length > copies.length ? `, ${matches.length - copies.length} similar` : "") + elapsed));
  if (Array.isArray(result.labels) && result.labels.length > 0) {
    const best = result.labels[0];
    parts.push(el("p", {class: "best-guess", id: "best-guess"}, "Best guess for this image: ",
      el("strong", {}, best.name), el("span", {class: "muted"}, ` (${Math.round(best.p * 100)}%)`)));
  }
  for (const [stage, reason] of Object.entries(result.stages_off || {})) {
    parts.push(el("p", {class: "muted stage-off"}, `The ${stage} stage is off: ${reason}`));
  }
  query.likely_original = result.likely_original || null;
  if (copies.length === 0) {
    parts.push(el("div", {class: "notice", id: "no-copies"},
      el("strong", {}, "No copies found"),
      el("span", {}, "Nothing in the collection is a copy, crop or edit of this image.")));
  }
  for (const kind of KINDS) {
    const group = matches.filter((m) => m.kind === kind);
    if (group.length === 0) continue;
    parts.push(el("section", {class: "group", "data-kind": kind},
      el("h2", {}, GROUP_TITLE[kind], el("span", {class: "count"}, group.length)),
      el("p", {class: "muted hint"}, GROUP_HINT[kind]),
      el("div", {class: "cards"}, group.map((m) => matchCard(m, query)))));
  }
  results.replaceChildren(...parts);
}

async function showPreview(src, name, bytes) {
  const preview = document.getElementById("preview");
  const img = document.getElementById("preview-img");
  preview.hidden = false;
  document.getElementById("preview-name").textContent = name;
  document.getElementById("preview-size").textContent = bytes ? formatBytes(bytes) : "";
  const loaded = new Promise((resolve) => {
    img.onload = () => resolve(true);
    img.onerror = () => resolve(false);
  });
  img.removeAttribute("src");  // so that searching the same URL again still fires load
  img.src = src;
  if (await loaded) {
    const size = `${img.naturalWidth} × ${img.naturalHeight}`;
    document.getElementById("preview-size").textContent = bytes ? `${size} · ${formatBytes(bytes)}` : size;
  }
  return img;
}

let searchSerial = 0;
let previewBlob = null;

async function search(source) {
  const serial = ++searchSerial;  // a newer search wins over a slower older one
  const results = document.getElementById("results");
  results.replaceChildren();
  document.body.classList.add("searching");
  setStatus("Searching…", "busy");
  if (previewBlob) URL.revokeObjectURL(previewBlob);
  const src = source.file ? URL.createObjectURL(source.file) : source.url;
  previewBlob = source.file ? src : null;
  const name = source.file ? (source.file.name || "pasted image") : source.url;
  const imgPromise = showPreview(src, name, source.file ? source.file.size : null);
  let response;
  try {
    if (source.file) {
      const form = new FormData();
      form.append("file", source.file, source.file.name || "pasted.png");
      response = await fetch("/api/search", {method: "POST", body: form});
    } else {
      response = await fetch("/api/search", {method: "POST", headers: {"Content-Type": "application/json"},
                                             body: JSON.stringify({url: source.url})});
    }
  } catch (err) {
    if (serial === searchSerial) setStatus(`Could not reach the server: ${err.message}`, "error");
    document.body.classList.remove("searching");
    return;
  }
  if (serial !== searchSerial) return;
  document.body.classList.remove("searching");
  if (!response.ok) {
    setStatus(await errorMessage(response), "error");
    return;
  }
  const result = await response.json();
  const img = await imgPromise;
  // Boxes are in the query's full pixel size; the preview's natural size is the fallback.
  const query = {src, width: result.width || img.naturalWidth, height: result.height || img.naturalHeight};
  if (serial !== searchSerial) return;
  setStatus("");
  renderResults(result, query);
}

function firstImageFile(list) {
  for (const file of list || []) if (file && file.type && file.type.startsWith("image/")) return file;
  return null;
}

function initSearch() {
  const drop = document.getElementById("drop");
  const fileInput = document.getElementById("file");
  const urlInput = document.getElementById("url");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = firstImageFile(event.dataTransfer.files);
    if (file) return search({file});
    const text = event.dataTransfer.getData("text/uri-list") || event.dataTransfer.getData("text/plain");
    if (isWebLink(text.trim())) { urlInput.value = text.trim(); return search({url: text.trim()}); }
    setStatus("That was not an image file.", "error");
  });
  // Dropping a file anywhere else on the page must not navigate away to it.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    if (file) search({file});
    fileInput.value = "";
  });
  document.addEventListener("paste", (event) => {
    const data = event.clipboardData;
    if (!data) return;
    const fromItems = Array.from(data.items || []).filter((i) => i.kind === "file").map((i) => i.getAsFile());
    const file = firstImageFile(data.files) || firstImageFile(fromItems);
    if (file) { event.preventDefault(); search({file}); return; }
    const text = (data.getData("text/plain") || "").trim();
    if (isWebLink(text) && event.target !== urlInput) {
      event.preventDefault();
      urlInput.value = text;
      search({url: text});
    }
  });
  document.getElementById("url-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const url = urlInput.value.trim();
    if (!isWebLink(url)) { setStatus("Enter an http:// or https:// address of an image.", "error"); return; }
    search({url});
  });
}

function initCollection() {
  const form = document.getElementById("add-form");
  const stored = sessionStorage.getItem("picorigin-api-key");
  const keyField = document.getElementById("api-key");
  if (keyField && stored) keyField.value = stored;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = new FormData();
    const file = document.getElementById("add-file").files[0];
    if (file) body.append("file", file, file.name);
    for (const name of ["url", "page_url", "creator", "title"]) {
      const value = (form.elements[name].value || "").trim();
      if (value) body.append(name, value);
    }
    if (!file && !body.get("url")) { setStatus("Choose an image file or enter its URL.", "error"); return; }
    setStatus("Adding…", "busy");
    let response;
    try {
      response = await fetch("/api/images", {method: "POST", body, headers: apiKeyHeaders(false)});
    } catch (err) {
      setStatus(`Could not reach the server: ${err.message}`, "error");
      return;
    }
    if (!response.ok) { setStatus(await errorMessage(response), "error"); return; }
    const added = await response.json();
    form.reset();
    if (keyField) keyField.value = sessionStorage.getItem("picorigin-api-key") || "";
    setStatus(["Added as ", el("a", {href: `/images/${added.id}`}, `image ${added.id}`), "."], "ok");
  });
}

function initImage() {
  const record = document.querySelector(".record");
  document.getElementById("delete").addEventListener("click", async () => {
    const id = record.dataset.imageId;
    if (!window.confirm(`Remove image ${id} from the collection?`)) return;
    const response = await fetch(`/api/images/${encodeURIComponent(id)}`,
                                 {method: "DELETE", headers: apiKeyHeaders(true)});
    if (!response.ok) { setStatus(await errorMessage(response), "error"); return; }
    window.location.assign("/collection");
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "search") initSearch();
  else if (page === "collection") initCollection();
  else if (page === "image") initImage();
});
