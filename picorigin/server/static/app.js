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
    match.upscaled ? el("span", {class: "badge upscaled", title: "Larger, but only an enlargement of a smaller copy"}, "upscaled") : null,
    isOriginal(match, query) ? el("span", {class: "badge original", title: "Most likely the original"}, "likely original") : null,
    ORIENTATION[match.orientation] ? el("span", {class: "badge"}, ORIENTATION[match.orientation]) : null);
  const facts = [];
  if (typeof match.score === "number") facts.push(`score ${Math.round(match.score * 100)}%`);
  if (match.width && match.height) facts.push(`${match.width} × ${match.height}`);
  if (match.format) facts.push(match.format);
  if (match.first_seen) facts.push(`first seen ${shortDate(match.first_seen)}`);
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
      pagesList(match.pages),
      compareLink(match, query)));
}

// The Compare button: a plain link, so it can be opened in a new tab, bookmarked and shared.
function compareLink(match, query) {
  const params = new URLSearchParams();
  if (query.upload) params.set("q", query.upload);
  else if (query.url) params.set("url", query.url);
  else return null;
  params.set("b", match.id);
  return el("p", {class: "card-actions"},
    el("a", {class: "button compare-button", href: `/compare?${params}`,
             title: "Your image and this one aligned: flip, slide, difference"}, "Compare"));
}

// "2019-03-01T10:00:00+00:00" -> "2019-03-01" (other text unchanged).
function shortDate(value) {
  const text = String(value || "");
  return /^\d{4}-\d{2}-\d{2}/.test(text) ? text.slice(0, 10) : text;
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

const SORT_TITLE = {changed: "Most changed first", biggest: "Biggest first (upscales after genuine sizes)",
                    oldest: "Oldest first seen first", newest: "Newest first seen first"};

function renderResults(result, query, options) {
  options = options || {};
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
  if (options.sort && options.sort !== "best") {
    // One list in the API's order: grouping by kind would undo the sort.
    if (matches.length > 0) {
      parts.push(el("section", {class: "group sorted", "data-sort": options.sort},
        el("h2", {}, SORT_TITLE[options.sort] || options.sort, el("span", {class: "count"}, matches.length)),
        el("p", {class: "muted hint"}, "Copies first, then similar images; each sorted as chosen."),
        el("div", {class: "cards"}, matches.map((m) => matchCard(m, query)))));
    }
  } else {
    for (const kind of KINDS) {
      const group = matches.filter((m) => m.kind === kind);
      if (group.length === 0) continue;
      parts.push(el("section", {class: "group", "data-kind": kind},
        el("h2", {}, GROUP_TITLE[kind], el("span", {class: "count"}, group.length)),
        el("p", {class: "muted hint"}, GROUP_HINT[kind]),
        el("div", {class: "cards"}, group.map((m) => matchCard(m, query)))));
    }
  }
  const history = timelineSection(matches, result.likely_original);
  if (history) parts.push(history);
  results.replaceChildren(...parts);
  drawTimelines();
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
let current = null;  // the query shown: {file, url, upload, src, width, height}

// The sort and filter options of the form, as the API takes them.
function arrangeOptions() {
  const form = document.getElementById("arrange");
  if (!form) return {};
  const options = {sort: form.elements.sort.value};
  const kinds = Array.from(form.querySelectorAll("input[name=kinds]"));
  const checked = kinds.filter((box) => box.checked).map((box) => box.value);
  if (checked.length < kinds.length) options.kinds = checked.join(",");
  const domain = form.elements.domain.value.trim();
  if (domain) options.domain = domain;
  if (form.elements.larger_only.checked) options.larger_only = true;
  return options;
}

async function search(source) {
  if (previewBlob) URL.revokeObjectURL(previewBlob);
  const src = source.file ? URL.createObjectURL(source.file) : source.url;
  previewBlob = source.file ? src : null;
  const name = source.file ? (source.file.name || "pasted image") : source.url;
  current = {file: source.file || null, url: source.url || null, upload: null, src,
             img: showPreview(src, name, source.file ? source.file.size : null)};
  return runSearch();
}

// Ask the API for the current query with the form's options; draw the answer.
async function runSearch() {
  if (!current) return;
  const query = current;
  const serial = ++searchSerial;  // a newer search wins over a slower older one
  const results = document.getElementById("results");
  const options = arrangeOptions();
  if (options.kinds === "") { setStatus("Choose at least one kind of match.", "error"); return; }
  results.replaceChildren();
  document.body.classList.add("searching");
  setStatus("Searching…", "busy");
  let response;
  try {
    if (query.upload) {  // the server still keeps this upload: no need to send it again
      response = await fetch("/api/search", {method: "POST", headers: {"Content-Type": "application/json"},
                                             body: JSON.stringify({upload: query.upload, ...options})});
      if (response.status === 404 && query.file) { query.upload = null; return runSearch(); }
    } else if (query.file) {
      const form = new FormData();
      form.append("file", query.file, query.file.name || "pasted.png");
      for (const [name, value] of Object.entries(options)) form.append(name, String(value));
      response = await fetch("/api/search", {method: "POST", body: form});
    } else {
      response = await fetch("/api/search", {method: "POST", headers: {"Content-Type": "application/json"},
                                             body: JSON.stringify({url: query.url, ...options})});
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
  const img = await query.img;
  if (serial !== searchSerial) return;
  if (result.upload) query.upload = result.upload;
  // Boxes are in the query's full pixel size; the preview's natural size is the fallback.
  query.width = result.width || img.naturalWidth;
  query.height = result.height || img.naturalHeight;
  setStatus("");
  document.getElementById("arrange").hidden = false;
  renderResults(result, query, options);
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
  const arrange = document.getElementById("arrange");
  arrange.addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
  // Choices apply at once; the domain field applies on Enter or Apply (not on every key).
  arrange.addEventListener("change", (event) => { if (event.target.name !== "domain") runSearch(); });
  document.getElementById("url-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const url = urlInput.value.trim();
    if (!isWebLink(url)) { setStatus("Enter an http:// or https:// address of an image.", "error"); return; }
    search({url});
  });
}

// -- timeline ---------------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Every sighting (page x image) of the copies found; each copy carries its whole group's pages.
function sightingsOf(matches) {
  const seen = new Map();
  for (const match of matches.filter((m) => COPY_KINDS.has(m.kind))) {
    for (const page of match.pages || []) {
      const id = page.image_id === null || page.image_id === undefined ? match.id : page.image_id;
      const key = `${id}\u0000${page.page_url}\u0000${page.image_url}`;
      if (!seen.has(key)) seen.set(key, {...page, image_id: id});
    }
  }
  return Array.from(seen.values());
}

function dateOf(value) {
  const t = Date.parse(value);
  return Number.isFinite(t) ? t : null;
}

function timelineSection(matches, original) {
  const sightings = sightingsOf(matches);
  if (sightings.length === 0) return null;
  const byId = new Map(matches.map((m) => [m.id, m]));
  const originalId = original ? original.id : null;
  const copyLabel = (id) => {
    const match = byId.get(id);
    const size = match && match.width ? ` ${match.width}×${match.height}` : "";
    return `#${id}${size}`;
  };
  const rows = [...sightings].sort((a, b) => (dateOf(a.first_seen) ?? Infinity) - (dateOf(b.first_seen) ?? Infinity));
  const table = el("table", {class: "timeline-table"},
    el("thead", {}, el("tr", {}, el("th", {}, "Copy"), el("th", {}, "Page"), el("th", {}, "First seen"),
                                 el("th", {}, "Last seen"))),
    el("tbody", {}, rows.map((s) => el("tr", {class: s.image_id === originalId ? "original" : null,
                                               "data-image-id": s.image_id},
      el("td", {}, el("a", {href: `/images/${encodeURIComponent(s.image_id)}`}, copyLabel(s.image_id)),
         s.image_id === originalId ? el("span", {class: "badge original"}, "original") : null),
      el("td", {class: "wrap"}, isWebLink(s.page_url)
        ? el("a", {href: s.page_url, rel: "noopener noreferrer nofollow", target: "_blank"}, s.title || shortUri(s.page_url))
        : (s.title || s.page_url || "")),
      el("td", {}, shortDate(s.first_seen)),
      el("td", {}, shortDate(s.last_seen) + (s.removed ? " (gone)" : ""))))));
  const evidence = original && Array.isArray(original.evidence) && original.evidence.length
    ? el("p", {class: "evidence"}, el("strong", {}, `Likely original: image ${original.id}`),
         ` — ${original.evidence.join("; ")}`)
    : null;
  const chart = el("div", {class: "timeline-chart"});
  chart.timeline = {sightings, originalId, copyLabel};
  return el("section", {class: "panel timeline", id: "timeline"},
    el("h2", {}, "Timeline", el("span", {class: "count"}, sightings.length)),
    el("p", {class: "muted hint"}, "Where the copies were seen: a line from first to last seen, one per page and copy."),
    evidence,
    el("div", {class: "timeline-grid"}, chart, el("div", {class: "table-wrap"}, table)));
}

// Tick marks on whole years, months or days, at most about one per 90 px.
function timeTicks(lo, hi, width) {
  const day = 86400000;
  const most = Math.max(3, Math.floor(width / 80));
  const ticks = [];
  const span = hi - lo;
  const start = new Date(lo);
  for (const years of [1, 2, 5, 10, 20, 50]) {
    if (span / (365.25 * day * years) > most) continue;
    if (span < 2 * 365 * day && years === 1) break;
    for (let y = Math.ceil(start.getUTCFullYear() / years) * years; ; y += years) {
      const t = Date.UTC(y, 0, 1);
      if (t > hi) break;
      if (t >= lo) ticks.push([t, String(y)]);
    }
    return ticks;
  }
  for (const months of [1, 2, 3, 6]) {
    if (span / (30.4 * day * months) > most) continue;
    if (span < 60 * day && months === 1) break;
    for (let m = start.getUTCMonth(), y = start.getUTCFullYear(); ; m += months) {
      const t = Date.UTC(y, m, 1);
      if (t > hi) break;
      if (t >= lo) ticks.push([t, new Date(t).toISOString().slice(0, 7)]);
    }
    return ticks;
  }
  const step = Math.max(1, Math.ceil(span / day / most));
  for (let t = Math.ceil(lo / day) * day; t <= hi; t += step * day) ticks.push([t, new Date(t).toISOString().slice(0, 10)]);
  return ticks;
}

function drawTimelines() {
  for (const chart of document.querySelectorAll(".timeline-chart")) drawTimeline(chart);
}

function drawTimeline(chart) {
  const {sightings, originalId, copyLabel} = chart.timeline;
  const dated = sightings.filter((s) => dateOf(s.first_seen) !== null);
  if (dated.length === 0) {
    chart.replaceChildren(el("p", {class: "muted"}, "No sighting has a known date."));
    return;
  }
  const width = Math.max(280, chart.clientWidth || 600);
  const times = dated.flatMap((s) => [dateOf(s.first_seen), dateOf(s.last_seen) ?? dateOf(s.first_seen)]);
  let lo = Math.min(...times), hi = Math.max(...times);
  const pad = Math.max((hi - lo) * 0.04, 86400000);
  lo -= pad; hi += pad;
  // One row per copy, earliest seen first; within a row, one lane per sighting.
  const copies = new Map();
  for (const s of [...dated].sort((a, b) => dateOf(a.first_seen) - dateOf(b.first_seen))) {
    if (!copies.has(s.image_id)) copies.set(s.image_id, []);
    copies.get(s.image_id).push(s);
  }
  const labelW = Math.min(130, Math.round(width * 0.28));
  const plotW = width - labelW - 16;
  const x = (t) => labelW + ((t - lo) / (hi - lo)) * plotW;
  const lane = 14, rowPad = 10;
  let y = 8;
  const groups = [];
  for (const [id, list] of copies) {
    const rowH = rowPad * 2 + lane * list.length;
    const isOriginal = id === originalId;
    const marks = list.map((s, i) => {
      const cy = y + rowPad + lane * i + lane / 2;
      const x0 = x(dateOf(s.first_seen));
      const x1 = x(dateOf(s.last_seen) ?? dateOf(s.first_seen));
      const where = s.title || shortUri(s.page_url);
      return svg("g", {class: "tl-mark", "data-image-id": id, "data-page": s.page_url},
        svg("title", {}, `${where}: first seen ${shortDate(s.first_seen)}, last seen ${shortDate(s.last_seen)}`),
        svg("line", {x1: x0, x2: Math.max(x1, x0 + 0.01), y1: cy, y2: cy, class: "tl-span"}),
        svg("circle", {cx: x0, cy, r: 5, class: "tl-first"}),
        x1 - x0 > 4 ? svg("circle", {cx: x1, cy, r: 3.5, class: "tl-last"}) : null);
    });
    groups.push(svg("g", {class: "tl-row" + (isOriginal ? " original" : ""), "data-image-id": id},
      svg("rect", {x: 0, y, width, height: rowH, class: "tl-band"}),
      svg("text", {x: 6, y: y + rowH / 2 + 4, class: "tl-label"}, (isOriginal ? "★ " : "") + copyLabel(id)),
      marks));
    y += rowH;
  }
  const axisY = y + 4;
  const ticks = timeTicks(lo, hi, plotW).map(([t, text]) => svg("g", {class: "tl-tick"},
    svg("line", {x1: x(t), x2: x(t), y1: 4, y2: axisY + 4}),
    svg("text", {x: x(t), y: axisY + 18, "text-anchor": "middle"}, text)));
  const height = axisY + 26;
  const picture = svg("svg", {class: "timeline-svg", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                              "aria-label": `Timeline of ${dated.length} sightings of ${copies.size} copies; the table lists them`},
    ticks, groups, svg("line", {x1: labelW, x2: width - 16, y1: axisY, y2: axisY, class: "tl-axis"}));
  chart.replaceChildren(picture);
}

let resizeFrame = 0;
window.addEventListener("resize", () => {
  cancelAnimationFrame(resizeFrame);
  resizeFrame = requestAnimationFrame(() => { drawTimelines(); layoutStage(); });
});

// -- compare ----------------------------------------------------------------------------------

function invert3(m) {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (!det) return null;
  return [[A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
          [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
          [C / det, -(a * h - b * g) / det, (a * e - b * d) / det]];
}

// A 3x3 homography (row-major, acting on [x, y, 1]) as CSS matrix3d (column-major 4x4).
function matrix3d(m) {
  return `matrix3d(${[m[0][0], m[1][0], 0, m[2][0], m[0][1], m[1][1], 0, m[2][1], 0, 0, 1, 0,
                      m[0][2], m[1][2], 0, m[2][2]].join(",")})`;
}

let stageState = null;

function layoutStage() {
  if (!stageState) return;
  const {stage, inner, aw, ah} = stageState;
  const room = stage.parentElement.clientWidth;
  const scale = Math.min(room / aw, (window.innerHeight * 0.7) / ah);
  stage.style.width = `${aw * scale}px`;
  stage.style.height = `${ah * scale}px`;
  inner.style.transform = `scale(${scale})`;
}

function pct(v, total) {
  return `${Math.max(0, Math.min(100, (100 * v) / total)).toFixed(3)}%`;
}

function boxSpan(box, width, height, cls, text) {
  const [x0, y0, x1, y1] = box;
  const span = el("span", {class: cls}, text ? el("span", {class: "box-label"}, text) : null);
  Object.assign(span.style, {left: pct(x0, width), top: pct(y0, height),
                             width: pct(x1 - x0, width), height: pct(y1 - y0, height)});
  return span;
}

function signed(v, digits) {
  const text = Math.abs(v).toFixed(digits);
  return (v > 0 ? "+" : v < 0 ? "−" : "±") + text;
}

function compareFacts(result) {
  const facts = [];
  const add = (name, ...value) => facts.push(el("dt", {}, name), el("dd", {}, ...value));
  add("Kind", KIND_LABEL[result.kind] || result.kind);
  add("Keypoints that agree", String(result.inliers));
  const [aw, ah, bw, bh] = [result.a_width, result.a_height, result.b_width, result.b_height];
  if (result.a_box) {
    const crop = [];
    if (result.a_overlap < 0.95) crop.push(`the match shows ${Math.round(result.a_overlap * 100)}% of yours`);
    if (result.b_overlap < 0.95) crop.push(`yours shows ${Math.round(result.b_overlap * 100)}% of the match`);
    add("Crop box", crop.length ? crop.join("; ") : "none: both show the whole picture",
        el("br"), el("span", {class: "muted small"},
          `yours [${result.a_box.join(", ")}] of ${aw}×${ah}, match [${result.b_box.join(", ")}] of ${bw}×${bh}`));
  }
  add("Rotation", `${Number(result.rotation || 0).toFixed(1)}°`);
  // scale is how large yours shows the match: 0.5 when yours is half its size.
  add("Scale", `yours shows the match at ×${Number(result.scale || 1).toFixed(3)}`);
  add("Mirrored", result.mirror ? "yes" : "no");
  const shift = result.colour_shift;
  if (shift) {
    // mean is yours minus the match: the match's shift is its negation.
    const channels = ["R", "G", "B"].map((c, i) => `${c} ${signed(-shift.mean[i], 0)}`).join(", ");
    const gains = ["R", "G", "B"].map((c, i) => `${c} ×${(1 / shift.gain[i]).toFixed(2)}`).join(", ");
    add("Colour shift", el("strong", {id: "colour-shift"}, shift.changed ? "yes" : "none noticeable"),
        el("br"), el("span", {class: "muted small"}, `match vs yours: ${channels}; contrast ${gains}`));
  }
  add("Changed area", `${((result.changed_share || 0) * 100).toFixed(1)}% of the overlap in ${(result.changed || []).length} region(s)`);
  add("Match read from", result.b_from === "location" ? `its file (${result.b_uri})`
    : "its thumbnail (no location of it could be read; boxes are still in full-size pixels)");
  return facts;
}

async function initCompare() {
  const root = document.getElementById("compare");
  const b = Number(root.dataset.b);
  const upload = root.dataset.upload;
  const request = upload ? {a_upload: upload, b_id: b} : {a: root.dataset.url, b_id: b};
  const srcA = upload ? `/api/uploads/${encodeURIComponent(upload)}` : root.dataset.url;
  const srcB = `/api/images/${encodeURIComponent(b)}/thumbnail`;
  let response;
  try {
    response = await fetch("/api/compare", {method: "POST", headers: {"Content-Type": "application/json"},
                                            body: JSON.stringify(request)});
  } catch (err) {
    setStatus(`Could not reach the server: ${err.message}`, "error");
    return;
  }
  if (!response.ok) { setStatus(await errorMessage(response), "error"); return; }
  const result = await response.json();
  setStatus("");
  document.getElementById("compare-body").hidden = false;
  const share = document.getElementById("share");
  share.href = window.location.href;
  share.textContent = window.location.pathname + window.location.search;
  const aw = result.a_width, ah = result.a_height;
  const bw = result.b_width || Number(root.dataset.bWidth), bh = result.b_height || Number(root.dataset.bHeight);
  document.getElementById("side-by-side").replaceChildren(
    el("figure", {}, boxedImage(srcA, result.a_box, aw, ah, "Your image"), el("figcaption", {}, `Yours · ${aw} × ${ah}`)),
    el("figure", {}, boxedImage(srcB, result.b_box, bw, bh, `Image ${b}`), el("figcaption", {}, `Image ${b} · ${bw} × ${bh}`)));
  const view = document.querySelector(".compare-view");
  if (!result.matched || !result.transform || result.kind === "similar") {
    view.replaceChildren(el("div", {class: "notice", id: "nothing-to-align"},
      el("strong", {}, "Nothing to align"),
      el("span", {}, "These two images share no geometry: they may look alike, but neither is a copy or crop " +
                     "of the other, so there is no transform to align them by. They are shown side by side below.")));
    document.querySelector(".compare-facts").replaceChildren(
      el("h2", {}, "What changed"), el("p", {class: "muted"}, "No keypoints agree between the two."));
    return;
  }
  document.getElementById("compare-facts").replaceChildren(...compareFacts(result));
  // The match drawn in your image's pixels: B -> A is the inverse of the fitted A -> B.
  const toA = invert3(result.transform);
  const stage = document.getElementById("stage");
  const imgA = el("img", {src: srcA, alt: "Your image", class: "layer-a"});
  Object.assign(imgA.style, {width: `${aw}px`, height: `${ah}px`});
  const imgB = el("img", {src: srcB, alt: `Image ${b}, aligned onto yours`});
  Object.assign(imgB.style, {width: `${bw}px`, height: `${bh}px`, transform: matrix3d(toA)});
  const layerB = el("div", {class: "layer-b", id: "layer-b"}, imgB);
  const inner = el("div", {class: "stage-inner"}, imgA, layerB);
  Object.assign(inner.style, {width: `${aw}px`, height: `${ah}px`});
  const regions = result.changed || [];
  const boxes = el("div", {class: "stage-boxes", "aria-hidden": "true"},
    boxSpan(result.a_box, aw, ah, "box common", null),
    regions.map((r, i) => boxSpan(r.a_box, aw, ah, "box changed", String(i + 1))));
  stage.replaceChildren(inner, boxes);
  stageState = {stage, inner, aw, ah};
  layoutStage();
  document.getElementById("stage-note").textContent =
    "Dashed: the region both images show. Numbered: regions whose content differs after alignment.";
  document.getElementById("region-count").textContent = String(regions.length);
  document.getElementById("regions").replaceChildren(...(regions.length ? regions.map((r, i) =>
    el("li", {class: "region"},
      el("strong", {}, `${(r.share * 100).toFixed(1)}% of the overlap`), ` · difference ${r.difference}`,
      el("br"), el("span", {class: "muted small"},
        `yours [${r.a_box.join(", ")}] · match [${r.b_box.join(", ")}]`)))
    : [el("li", {class: "muted"}, "None: after alignment (and evening out colour) the content is the same.")]));
  setupModes(layerB);
}

function setupModes(layerB) {
  const flip = document.getElementById("flip");
  const range = document.getElementById("range");
  const rangeLabel = document.getElementById("range-label");
  const rangeName = document.getElementById("range-name");
  const showing = document.getElementById("showing");
  let mode = "flip";
  let flipped = false;
  const apply = () => {
    layerB.className = `layer-b mode-${mode}`;
    layerB.style.clipPath = "";
    layerB.style.opacity = "";
    flip.hidden = mode !== "flip";
    rangeLabel.hidden = mode !== "slider" && mode !== "overlay";
    if (mode === "flip") {
      layerB.style.opacity = flipped ? "1" : "0";
      flip.setAttribute("aria-pressed", String(flipped));
      showing.textContent = flipped ? "Showing: the match, aligned" : "Showing: yours";
    } else if (mode === "slider") {
      rangeName.textContent = "Wipe";
      layerB.style.clipPath = `inset(0 0 0 ${range.value}%)`;
      showing.textContent = "Left: yours · right: the match";
    } else if (mode === "overlay") {
      rangeName.textContent = "Match opacity";
      layerB.style.opacity = String(range.value / 100);
      showing.textContent = `The match over yours at ${range.value}%`;
    } else {
      showing.textContent = "Difference: black where they agree";
    }
  };
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", () => { mode = radio.value; apply(); });
  }
  flip.addEventListener("click", () => { flipped = !flipped; apply(); });
  range.addEventListener("input", apply);
  document.addEventListener("keydown", (event) => {
    const typing = event.target instanceof HTMLInputElement && event.target.type !== "radio";
    if (mode === "flip" && !typing && (event.key === "f" || event.key === "F")) { flipped = !flipped; apply(); }
  });
  apply();
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
  else if (page === "compare") initCompare();
});
