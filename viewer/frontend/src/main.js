// The RIS diagnostic viewer: cornerstone3D (core, tools, dicom-image-loader).
//
// Images come over the RIS's own WADO-URI (`wadouri:` image ids); the study/series/instance
// manifest (viewer app, one query) gives the geometry up front so that a series can be
// sorted and built into a volume before its pixels arrive. See docs/viewer.md.
import {
  init as csInit,
  RenderingEngine,
  Enums,
  volumeLoader,
  setVolumesForViewports,
  metaData,
  eventTarget,
  cache,
  utilities as csUtils,
} from "@cornerstonejs/core";
import {
  init as toolsInit,
  addTool,
  ToolGroupManager,
  Enums as ToolEnums,
  WindowLevelTool,
  PanTool,
  ZoomTool,
  StackScrollTool,
  LengthTool,
  AngleTool,
  EllipticalROITool,
  CrosshairsTool,
  annotation,
} from "@cornerstonejs/tools";
import { init as loaderInit } from "@cornerstonejs/dicom-image-loader";

const cfg = JSON.parse(document.getElementById("viewer-config").textContent);
const T = cfg.i18n || {};
const t = (key, fallback) => T[key] || fallback || key;
const MB = ToolEnums.MouseBindings;
const { ViewportType, OrientationAxis, BlendModes, Events } = Enums;

export const PRESETS = {
  brain: { window: 80, level: 40 },
  stroke: { window: 40, level: 40 },
  lung: { window: 1500, level: -600 },
  mediastinum: { window: 350, level: 50 },
  abdomen: { window: 400, level: 40 },
  liver: { window: 150, level: 30 },
  bone: { window: 2000, level: 500 },
};
const BLEND = {
  none: BlendModes.COMPOSITE,
  mip: BlendModes.MAXIMUM_INTENSITY_BLEND,
  minip: BlendModes.MINIMUM_INTENSITY_BLEND,
  avg: BlendModes.AVERAGE_INTENSITY_BLEND,
};
const TOOL_NAMES = {
  wl: WindowLevelTool.toolName,
  pan: PanTool.toolName,
  zoom: ZoomTool.toolName,
  scroll: StackScrollTool.toolName,
  length: LengthTool.toolName,
  angle: AngleTool.toolName,
  ellipse: EllipticalROITool.toolName,
  crosshairs: CrosshairsTool.toolName,
};
const ENGINE_ID = "ris-engine";
const STACK_GROUP = "ris-stack";
const MPR_GROUP = "ris-mpr";

// ---------------------------------------------------------------------------------------
// State (read by the test hook `window.risViewer`).

const state = {
  ready: false,
  error: "",
  mode: "stack", // stack | mpr
  layout: "1x1",
  tool: "wl",
  preset: "default",
  invert: false,
  projection: "none",
  slab: 0,
  studies: {}, // uid -> manifest
  series: null, // current series entry
  prior: null, // {study, series} shown beside
  volume: { id: "", ok: false, reason: "", loaded: 0, total: 0, ready: false, error: "" },
  errors: {}, // imageId -> message
  firstImageAt: 0,
  volumeReadyAt: 0,
  cine: null,
  prefs: cfg.preferences_data || {},
};
const meta = new Map(); // imageId -> {instance, series, study}
let engine;

// ---------------------------------------------------------------------------------------
// Metadata from the manifest: geometry and rescale before any pixel has arrived.

function vec(a) {
  return a ? a.map(Number) : null;
}
function cross(a, b) {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}
function dot(a, b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
function normalOf(orientation) {
  return cross(orientation.slice(0, 3), orientation.slice(3, 6));
}

const pixelFallback = new Map(); // series uid -> imagePixelModule of its first loaded image
function manifestProvider(type, imageId) {
  const m = meta.get(imageId);
  if (!m) return undefined;
  const { instance: i, series: s, study } = m;
  switch (type) {
    case "imagePlaneModule": {
      const o = vec(i.orientation);
      const sp = vec(i.spacing);
      const p = vec(i.position);
      return {
        frameOfReferenceUID: study.uid,
        rows: i.rows,
        columns: i.columns,
        imageOrientationPatient: o,
        rowCosines: o ? o.slice(0, 3) : null,
        columnCosines: o ? o.slice(3, 6) : null,
        imagePositionPatient: p,
        sliceThickness: i.thickness,
        sliceLocation: p && o ? dot(p, normalOf(o)) : undefined,
        pixelSpacing: sp,
        rowPixelSpacing: sp ? sp[0] : null,
        columnPixelSpacing: sp ? sp[1] : null,
        usingDefaultValues: !sp,
      };
    }
    case "modalityLutModule":
      return {
        rescaleSlope: i.slope ?? 1,
        rescaleIntercept: i.intercept ?? 0,
        rescaleType: i.rescale_type || (s.modality === "CT" ? "HU" : ""),
      };
    case "generalSeriesModule":
      return {
        modality: s.modality,
        seriesInstanceUID: s.uid,
        seriesNumber: s.number,
        studyInstanceUID: study.uid,
        seriesDescription: s.description,
      };
    case "voiLutModule":
      return i.center != null && i.width != null
        ? { windowCenter: [i.center], windowWidth: [i.width] }
        : undefined;
    case "transferSyntax":
      return { transferSyntaxUID: i.transfer_syntax };
    default:
      return undefined;
  }
}
function pixelFallbackProvider(type, imageId) {
  if (type !== "imagePixelModule") return undefined;
  const m = meta.get(imageId);
  return m ? pixelFallback.get(m.series.uid) : undefined;
}

function imageIdsFor(study, series) {
  const ids = [];
  for (const inst of series.instances) {
    const base = "wadouri:" + new URL(inst.url, location.href).href;
    const frames = inst.frames || 1;
    for (let f = 1; f <= frames; f++) {
      const id = frames > 1 ? `${base}&frame=${f}` : base;
      meta.set(id, { instance: inst, series, study });
      ids.push(id);
    }
  }
  return ids;
}

// ---------------------------------------------------------------------------------------
// DOM helpers

const $ = (sel, root = document) => root.querySelector(sel);
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}
function setStatus(text) {
  const s = $("#viewer-status");
  if (s) s.textContent = text;
}
function showError(text) {
  state.error = text;
  const box = $("#viewer-error");
  box.textContent = text;
  box.hidden = !text;
}

// ---------------------------------------------------------------------------------------
// Viewports

function viewportIds() {
  if (state.mode === "mpr") return ["axial", "sagittal", "coronal"];
  return state.prior ? ["main", "prior"] : ["main"];
}
function getViewport(id) {
  return engine.getViewport(id);
}
function overlayFor(id) {
  return $(`[data-viewport-id="${id}"] .overlay`);
}

function buildLayout() {
  const grid = $("#viewports");
  const ids = viewportIds();
  for (const tg of [STACK_GROUP, MPR_GROUP]) {
    const g = ToolGroupManager.getToolGroup(tg);
    if (g) for (const { viewportId } of g.getViewportsInfo()) g.removeViewports(ENGINE_ID, viewportId);
  }
  for (const vp of engine.getViewports()) engine.disableElement(vp.id);
  grid.replaceChildren();
  grid.dataset.layout = state.mode === "mpr" ? "mpr" : ids.length === 2 ? "1x2" : "1x1";
  const inputs = [];
  for (const id of ids) {
    const element = el("div", { class: "vp-canvas", "data-testid": `viewport-${id}` });
    element.oncontextmenu = (e) => e.preventDefault();
    const overlay = el(
      "div",
      { class: "overlay", "aria-live": "off" },
      el("div", { class: "tl" }),
      el("div", { class: "tr" }),
      el("div", { class: "bl" }),
      el("div", { class: "br" }),
      el("div", { class: "om om-top" }),
      el("div", { class: "om om-bottom" }),
      el("div", { class: "om om-left" }),
      el("div", { class: "om om-right" }),
      el("div", { class: "vp-message", role: "alert", hidden: "" }),
    );
    const cell = el("section", { class: "vp", "data-viewport-id": id }, element, overlay);
    grid.append(cell);
    const input = { viewportId: id, element, type: ViewportType.STACK, defaultOptions: { background: [0, 0, 0] } };
    if (state.mode === "mpr") {
      input.type = ViewportType.ORTHOGRAPHIC;
      input.defaultOptions.orientation = {
        axial: OrientationAxis.AXIAL,
        sagittal: OrientationAxis.SAGITTAL,
        coronal: OrientationAxis.CORONAL,
      }[id];
    }
    inputs.push(input);
    for (const evt of [Events.IMAGE_RENDERED, Events.CAMERA_MODIFIED, Events.VOI_MODIFIED, Events.STACK_NEW_IMAGE]) {
      element.addEventListener(evt, scheduleOverlay);
    }
    element.addEventListener("pointerdown", () => setActiveViewport(id));
    element.addEventListener(Events.STACK_NEW_IMAGE, (evt) => checkDecoded(evt.detail.image, evt.detail.imageId));
  }
  engine.setViewports(inputs);
  const group = ToolGroupManager.getToolGroup(state.mode === "mpr" ? MPR_GROUP : STACK_GROUP);
  for (const id of ids) group.addViewport(id, ENGINE_ID);
  activeViewportId = ids[0];
  applyTool(state.mode === "mpr" && state.tool === "scroll" ? "scroll" : state.tool);
}
let activeViewportId = "main";
function setActiveViewport(id) {
  activeViewportId = id;
  document.querySelectorAll(".vp").forEach((n) => n.classList.toggle("active", n.dataset.viewportId === id));
}

function createToolGroups() {
  for (const T of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, LengthTool, AngleTool, EllipticalROITool, CrosshairsTool]) {
    addTool(T);
  }
  for (const id of [STACK_GROUP, MPR_GROUP]) {
    const g = ToolGroupManager.createToolGroup(id);
    for (const name of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, LengthTool, AngleTool, EllipticalROITool]) {
      g.addTool(name.toolName);
    }
    if (id === MPR_GROUP) {
      g.addTool(CrosshairsTool.toolName, {
        getReferenceLineColor: (vid) => ({ axial: "rgb(255,80,80)", sagittal: "rgb(255,255,80)", coronal: "rgb(80,255,80)" })[vid],
        getReferenceLineControllable: () => true,
        getReferenceLineDraggableRotatable: () => true,
        getReferenceLineSlabThicknessControlsOn: () => true,
      });
    }
    g.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MB.Wheel }] });
    g.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MB.Auxiliary }] });
    g.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MB.Secondary }] });
    g.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MB.Primary }] });
  }
}

function applyTool(tool) {
  const group = ToolGroupManager.getToolGroup(state.mode === "mpr" ? MPR_GROUP : STACK_GROUP);
  if (tool === "crosshairs" && state.mode !== "mpr") tool = "wl";
  const primary = TOOL_NAMES[tool];
  for (const [key, name] of Object.entries(TOOL_NAMES)) {
    if (!group.hasTool(name) || name === primary) continue;
    if (key === "scroll") group.setToolActive(name, { bindings: [{ mouseButton: MB.Wheel }] });
    else if (key === "pan") group.setToolActive(name, { bindings: [{ mouseButton: MB.Auxiliary }] });
    else if (key === "zoom") group.setToolActive(name, { bindings: [{ mouseButton: MB.Secondary }] });
    else if (["length", "angle", "ellipse", "crosshairs"].includes(key)) group.setToolPassive(name);
    else group.setToolPassive(name);
  }
  const bindings = [{ mouseButton: MB.Primary }];
  if (tool === "scroll") bindings.push({ mouseButton: MB.Wheel });
  if (tool === "pan") bindings.push({ mouseButton: MB.Auxiliary });
  if (tool === "zoom") bindings.push({ mouseButton: MB.Secondary });
  group.setToolActive(primary, { bindings });
  state.tool = tool;
  document.querySelectorAll("[data-tool]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.tool === tool)));
}

// ---------------------------------------------------------------------------------------
// Overlay: patient/study/series, slice position and thickness, W/L, zoom, orientation.

const LETTERS = [
  ["L", "R"],
  ["P", "A"],
  ["H", "F"],
];
export function orientationLabel(v) {
  const parts = v
    .map((c, axis) => ({ c, axis }))
    .filter(({ c }) => Math.abs(c) > 0.3)
    .sort((a, b) => Math.abs(b.c) - Math.abs(a.c));
  return parts.map(({ c, axis }) => LETTERS[axis][c > 0 ? 0 : 1]).join("");
}

function viewportState(id) {
  try {
    return viewportStateUnsafe(id);
  } catch (e) {
    return null; // a viewport between layouts has no image or volume yet
  }
}
function viewportStateUnsafe(id) {
  const vp = getViewport(id);
  if (!vp) return null;
  const camera = vp.getCamera();
  const props = vp.getProperties();
  const voi = props.voiRange || {};
  const out = {
    id,
    type: vp.type,
    width: vp.canvas.width,
    height: vp.canvas.height,
    invert: !!props.invert,
    voi: { lower: voi.lower, upper: voi.upper },
    window: voi.upper != null ? voi.upper - voi.lower : null,
    level: voi.upper != null ? (voi.upper + voi.lower) / 2 : null,
    viewUp: camera.viewUp,
    viewPlaneNormal: camera.viewPlaneNormal,
    focalPoint: camera.focalPoint,
    parallelScale: camera.parallelScale,
    zoom: vp.getZoom ? vp.getZoom() : 1,
  };
  if (vp.type === ViewportType.STACK) {
    const index = vp.getCurrentImageIdIndex();
    const imageId = vp.getImageIds()[index];
    const m = meta.get(imageId);
    out.imageIndex = index;
    out.numImages = vp.getImageIds().length;
    out.imageId = imageId;
    const target = vp.getTargetImageIdIndex ? vp.getTargetImageIdIndex() : index;
    out.targetIndex = target;
    out.error = state.errors[vp.getImageIds()[target]] || state.errors[imageId] || "";
    if (m && m.instance.position && m.instance.orientation) {
      out.slicePosition = dot(vec(m.instance.position), normalOf(vec(m.instance.orientation)));
    }
    out.thickness = m ? m.instance.thickness : null;
    out.instanceNumber = m ? m.instance.number : null;
    const image = cache.getImage(imageId);
    out.rows = image ? image.rows : m && m.instance.rows;
    out.columns = image ? image.columns : m && m.instance.columns;
  } else {
    out.imageIndex = vp.getSliceIndex();
    out.numImages = vp.getNumberOfSlices();
    // Position along the plane's normal, signed so that its main axis points L, P or H
    // (as Slice Location in the stack: an axial plane reads its z).
    const n = camera.viewPlaneNormal;
    const major = n.reduce((best, c, k) => (Math.abs(c) > Math.abs(n[best]) ? k : best), 0);
    out.slicePosition = dot(camera.focalPoint, n) * (n[major] < 0 ? -1 : 1);
    out.slab = vp.getSlabThickness ? vp.getSlabThickness() : 0;
    out.blendMode = vp.getBlendMode ? vp.getBlendMode() : 0;
    const volume = cache.getVolume(state.volume.id);
    if (volume) {
      // In-plane size in voxels: the volume's extent along the view's right and up axes.
      const right = cross(camera.viewUp, camera.viewPlaneNormal);
      const dims = volume.dimensions;
      const dir = volume.direction;
      const axes = [dir.slice(0, 3), dir.slice(3, 6), dir.slice(6, 9)];
      const along = (v) => {
        let best = 0;
        let bestDot = 0;
        axes.forEach((a, k) => {
          const d = Math.abs(dot(a, v));
          if (d > bestDot) {
            bestDot = d;
            best = k;
          }
        });
        return best;
      };
      out.planeColumns = dims[along(right)];
      out.planeRows = dims[along(camera.viewUp)];
      out.planeSpacing = [volume.spacing[along(camera.viewUp)], volume.spacing[along(right)]];
    }
  }
  out.thickness = out.thickness ?? null;
  return out;
}

function fmt(n, d = 1) {
  return n == null || Number.isNaN(n) ? "" : Number(n).toFixed(d);
}

function updateOverlay(id) {
  const o = overlayFor(id);
  const s = viewportState(id);
  if (!o || !s) return;
  const manifest = id === "prior" && state.prior ? state.prior.study : state.studies[cfg.study];
  const series = id === "prior" && state.prior ? state.prior.series : state.series;
  const st = manifest ? manifest.study : {};
  $(".tl", o).replaceChildren(
    el("div", { "data-testid": "ov-patient" }, `${(st.patient_name || "").split("=")[0].replaceAll("^", " ")} · ${st.patient_id || ""}`),
    el("div", {}, `${st.date || ""} ${st.description || ""}`),
    el("div", {}, `${t("accession", "Acc")}: ${st.accession || ""}`),
  );
  const label = state.mode === "mpr" ? t(id, id) : `${t("series", "Se")}: ${series ? series.number ?? "" : ""} ${series ? series.description : ""}`;
  $(".tr", o).replaceChildren(
    el("div", {}, label),
    el("div", { "data-testid": "ov-image" }, `${t("image", "Im")}: ${s.imageIndex + 1} / ${s.numImages}`),
    el("div", { "data-testid": "ov-position" }, `${t("position", "Pos")}: ${fmt(s.slicePosition, 2)} mm`),
    el("div", { "data-testid": "ov-thickness" }, s.slab ? `${t("slab", "Slab")}: ${fmt(s.slab, 1)} mm` : s.thickness ? `${t("thickness", "Th")}: ${fmt(s.thickness, 2)} mm` : ""),
  );
  $(".bl", o).replaceChildren(
    el("div", { "data-testid": "ov-wl" }, s.window != null ? `W: ${Math.round(s.window)} L: ${Math.round(s.level)}` : ""),
    el("div", {}, `${t("zoom", "Zoom")}: ${fmt(s.zoom, 2)}×${s.invert ? " · " + t("inverted", "inverted") : ""}`),
  );
  $(".br", o).replaceChildren(el("div", {}, s.rows ? `${s.columns}×${s.rows}` : s.planeColumns ? `${s.planeColumns}×${s.planeRows}` : ""));
  const up = s.viewUp;
  const right = cross(s.viewUp, s.viewPlaneNormal);
  $(".om-top", o).textContent = orientationLabel(up);
  $(".om-bottom", o).textContent = orientationLabel(up.map((x) => -x));
  $(".om-right", o).textContent = orientationLabel(right);
  $(".om-left", o).textContent = orientationLabel(right.map((x) => -x));
  const msg = $(".vp-message", o);
  msg.textContent = s.error || "";
  msg.hidden = !s.error;
}
function updateAllOverlays() {
  for (const id of viewportIds()) updateOverlay(id);
}
let overlayFrame = 0;
function scheduleOverlay() {
  // Coalesced: one overlay refresh per animation frame, after the viewport has its new image.
  if (overlayFrame) return;
  overlayFrame = requestAnimationFrame(() => {
    overlayFrame = 0;
    healCameras();
    updateAllOverlays();
  });
}

// ---------------------------------------------------------------------------------------
// Loading: the stack first (first image as soon as it arrives), the volume behind it.

async function fetchManifest(url) {
  const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!r.ok) {
    let detail = `${r.status}`;
    try {
      detail = (await r.json()).detail || detail;
    } catch (e) {
      /* not JSON */
    }
    throw new Error(detail);
  }
  return r.json();
}

function rememberPixelModule(imageId) {
  const m = meta.get(imageId);
  if (!m || pixelFallback.has(m.series.uid)) return;
  const pm = metaData.get("imagePixelModule", imageId);
  if (pm && pm.bitsAllocated) pixelFallback.set(m.series.uid, pm);
}

async function showSeries(study, series, viewportId = "main") {
  if (state.mode === "mpr" && viewportId === "main") {
    state.mode = "stack";
    buildLayout();
  }
  if (viewportId === "main") {
    state.series = series;
    state.errors = {};
    document.querySelectorAll("[data-series-uid]").forEach((b) => b.setAttribute("aria-current", String(b.dataset.seriesUid === series.uid)));
    state.volume = { id: "", ok: series.volume.ok, reason: series.volume.reason, loaded: 0, total: 0, ready: false, error: "" };
    updateMprButton();
  }
  const ids = imageIdsFor(study, series);
  const vp = getViewport(viewportId);
  const start = 0;
  try {
    await vp.setStack(ids, start);
    rememberPixelModule(ids[start]);
  } catch (e) {
    markError(ids[start], e);
  }
  applyPreset(state.preset, viewportId, { save: false });
  vp.render();
  if (viewportId === "main" && !state.firstImageAt) state.firstImageAt = performance.now();
  updateOverlay(viewportId);
  if (viewportId === "main" && series.volume.ok && series.modality !== "US") {
    startVolume(study, series, ids).catch((e) => {
      state.volume.error = String(e && e.message ? e.message : e);
      setStatus(`${t("volume_failed", "Volume could not be built")}: ${state.volume.error}`);
    });
  } else if (viewportId === "main") {
    setProgress(0, 0);
    setStatus(series.volume.ok ? "" : `${t("no_mpr", "No MPR")}: ${series.volume.reason}`);
  }
}

function checkDecoded(image, imageId) {
  // A codec that "succeeds" with no pixels (a corrupt stream) is a failure to the reader too.
  const id = imageId || (image && image.imageId);
  const m = meta.get(id);
  if (!id) return;
  const empty = !image || !image.rows || !image.columns;
  const wrong = m && image && m.instance.rows && (image.rows !== m.instance.rows || image.columns !== m.instance.columns);
  if (empty || wrong) {
    markError(id, { message: empty ? t("empty_image", "no pixels decoded") : `${image.columns}×${image.rows}` });
    scheduleOverlay();
    return;
  }
}

const goodCameras = new Map(); // viewport id -> last camera with a finite extent
function healCameras() {
  // An empty image leaves the camera without extent (NaN): the next good image gets the
  // last good camera back.
  for (const vp of engine.getViewports()) {
    if (vp.type !== ViewportType.STACK) continue;
    const camera = vp.getCamera();
    if (Number.isFinite(camera.parallelScale)) {
      goodCameras.set(vp.id, camera);
      continue;
    }
    const image = cache.getImage(vp.getCurrentImageId());
    const good = goodCameras.get(vp.id);
    if (good && image && image.rows && image.columns) {
      vp.setCamera({ ...good, focalPoint: [good.focalPoint[0], good.focalPoint[1], camera.focalPoint[2]] });
      vp.render();
    }
  }
}

function markError(imageId, e) {
  const m = meta.get(imageId);
  const what = m ? `${t("instance", "Image")} ${m.instance.number ?? ""}` : "";
  const reason = e && (e.message || e.error?.message || (typeof e === "string" ? e : ""));
  state.errors[imageId] = `${what}: ${t("cannot_decode", "this image cannot be shown")}${m ? ` (${m.instance.transfer_syntax})` : ""}${reason ? ` — ${reason}` : ""}`;
}

function setProgress(loaded, total) {
  const bar = $("#viewer-progress");
  if (!bar) return;
  bar.hidden = !total || loaded >= total;
  bar.max = total || 1;
  bar.value = loaded;
  $("#viewer-progress-label").textContent = total && loaded < total ? `${t("loading_volume", "Loading volume")} ${loaded}/${total}` : "";
}

async function startVolume(study, series, ids) {
  const volumeId = `cornerstoneStreamingImageVolume:${series.uid}`;
  state.volume.id = volumeId;
  state.volume.total = ids.length;
  setProgress(0, ids.length);
  let volume = cache.getVolume(volumeId);
  if (!volume) volume = await volumeLoader.createAndCacheVolume(volumeId, { imageIds: ids });
  const onModified = (evt) => {
    if (evt.detail.volumeId !== volumeId) return;
    state.volume.loaded = evt.detail.framesProcessed;
    setProgress(state.volume.loaded, ids.length);
  };
  eventTarget.addEventListener(Events.IMAGE_VOLUME_MODIFIED, onModified);
  await new Promise((resolve) => {
    const done = () => {
      eventTarget.removeEventListener(Events.IMAGE_VOLUME_MODIFIED, onModified);
      resolve();
    };
    if (volume.loadStatus && volume.loadStatus.loaded) return done();
    volume.load(done);
  });
  if (state.volume.id !== volumeId) return;
  state.volume.loaded = ids.length;
  state.volume.ready = true;
  state.volumeReadyAt = performance.now();
  setProgress(ids.length, ids.length);
  setStatus(t("volume_ready", "Volume ready: MPR available (M)"));
  updateMprButton();
}

function updateMprButton() {
  const b = $("#btn-mpr");
  b.disabled = !state.volume.ok;
  b.title = state.volume.ok ? t("mpr_title", "MPR (M)") : `${t("no_mpr", "No MPR")}: ${state.volume.reason}`;
  $("#mpr-reason").textContent = state.volume.ok ? "" : state.volume.reason;
  document.querySelectorAll(".mpr-only").forEach((n) => (n.hidden = state.mode !== "mpr"));
}

async function enterMpr() {
  if (!state.series || !state.volume.ok) {
    setStatus(`${t("no_mpr", "No MPR")}: ${state.volume.reason}`);
    return false;
  }
  const study = state.studies[cfg.study];
  if (!state.volume.id) await startVolume(study, state.series, imageIdsFor(study, state.series));
  state.mode = "mpr";
  state.prior = null;
  buildLayout();
  await setVolumesForViewports(engine, [{ volumeId: state.volume.id }], viewportIds());
  for (const id of viewportIds()) applyPreset(state.preset, id, { save: false });
  setProjection(state.projection, state.slab);
  engine.render();
  updateMprButton();
  savePrefs({ layout: "mpr" });
  updateAllOverlays();
  return true;
}

async function exitMpr() {
  state.mode = "stack";
  buildLayout();
  const study = state.studies[cfg.study];
  await showSeries(study, state.series, "main");
  updateMprButton();
  savePrefs({ layout: "1x1" });
}

function setProjection(mode, thickness) {
  state.projection = mode in BLEND ? mode : "none";
  state.slab = Number(thickness) || 0;
  if (state.mode !== "mpr") return;
  for (const id of viewportIds()) {
    const vp = getViewport(id);
    vp.setBlendMode(BLEND[state.projection]);
    // A projection needs a slab; none = the thinnest (one voxel).
    vp.setSlabThickness(state.projection === "none" ? 0.1 : Math.max(state.slab, 1));
    vp.render();
  }
  $("#projection").value = state.projection;
  $("#slab").value = String(state.slab);
  $("#slab-value").textContent = `${state.slab} mm`;
  updateAllOverlays();
}

function rotateOblique(degrees, viewportId = activeViewportId) {
  // Oblique MPR: tilt the active plane about its vertical screen axis.
  if (state.mode !== "mpr") return;
  const vp = getViewport(viewportId);
  const cam = vp.getCamera();
  const a = (degrees * Math.PI) / 180;
  const u = cam.viewUp;
  const n = cam.viewPlaneNormal;
  const c = Math.cos(a);
  const s = Math.sin(a);
  const uxn = cross(u, n);
  const k = dot(u, n);
  const rotated = [0, 1, 2].map((i) => n[i] * c + uxn[i] * s + u[i] * k * (1 - c));
  const dist = Math.hypot(...[0, 1, 2].map((i) => cam.position[i] - cam.focalPoint[i]));
  vp.setCamera({
    viewPlaneNormal: rotated,
    viewUp: u,
    position: [0, 1, 2].map((i) => cam.focalPoint[i] + rotated[i] * dist),
    focalPoint: cam.focalPoint,
  });
  vp.render();
  updateOverlay(viewportId);
}

// ---------------------------------------------------------------------------------------
// Window/level, invert, zoom, cine, priors

function applyPreset(name, viewportId, { save = true } = {}) {
  const ids = viewportId ? [viewportId] : viewportIds();
  for (const id of ids) {
    const vp = getViewport(id);
    if (!vp) continue;
    if (name === "default" || !PRESETS[name]) {
      const sId = id === "prior" && state.prior ? state.prior.series : state.series;
      const first = sId && sId.instances.find((i) => i.center != null && i.width != null);
      if (first) vp.setProperties({ voiRange: { lower: first.center - first.width / 2, upper: first.center + first.width / 2 } });
      else if (vp.resetProperties) vp.resetProperties();
    } else {
      const p = PRESETS[name];
      vp.setProperties({ voiRange: { lower: p.level - p.window / 2, upper: p.level + p.window / 2 } });
    }
    vp.setProperties({ invert: effectiveInvert(id) });
    vp.render();
  }
  state.preset = name;
  $("#preset").value = name;
  if (save && state.series) savePrefs({ presets: { [state.series.modality || "OT"]: name } });
}

function effectiveInvert(id) {
  // MONOCHROME1: the lowest value is white (PS3.3 C.7.6.3.1.2), so it starts inverted;
  // the Invert button flips whatever the photometric interpretation asks for.
  const series = id === "prior" && state.prior ? state.prior.series : state.series;
  const mono1 = !!series && state.mode !== "mpr" && series.instances.some((i) => i.photometric === "MONOCHROME1");
  return mono1 !== state.invert;
}

function toggleInvert() {
  state.invert = !state.invert;
  for (const id of viewportIds()) {
    const vp = getViewport(id);
    vp.setProperties({ invert: effectiveInvert(id) });
    vp.render();
  }
  $("#btn-invert").setAttribute("aria-pressed", String(state.invert));
}

function fit() {
  for (const id of viewportIds()) {
    const vp = getViewport(id);
    vp.resetCamera();
    vp.render();
  }
}

function zoomBy(factor) {
  const vp = getViewport(activeViewportId);
  const cam = vp.getCamera();
  vp.setCamera({ parallelScale: cam.parallelScale / factor });
  vp.render();
}

async function scrollBy(delta, viewportId = activeViewportId) {
  const vp = getViewport(viewportId);
  if (!vp) return;
  csUtils.scroll(vp, { delta });
  scheduleOverlay();
  if (viewportId === "main" && state.prior && syncScroll) await syncPrior();
}

async function scrollTo(index, viewportId = "main") {
  const vp = getViewport(viewportId);
  if (vp.type === ViewportType.STACK) {
    try {
      await vp.setImageIdIndex(index);
    } catch (e) {
      markError(vp.getImageIds()[index], e);
    }
    healCameras();
  } else {
    const current = vp.getSliceIndex();
    csUtils.scroll(vp, { delta: index - current });
  }
  vp.render();
  updateOverlay(viewportId);
  if (viewportId === "main" && state.prior && syncScroll) await syncPrior();
}

let syncScroll = true;
async function syncPrior() {
  // Synchronised scroll by slice position: the prior shows its slice nearest the main one's.
  const main = viewportState("main");
  const prior = getViewport("prior");
  if (!main || !prior || main.slicePosition == null) return;
  const ids = prior.getImageIds();
  let best = -1;
  let bestDist = Infinity;
  ids.forEach((id, k) => {
    const m = meta.get(id);
    if (!m || !m.instance.position || !m.instance.orientation) return;
    const pos = dot(vec(m.instance.position), normalOf(vec(m.instance.orientation)));
    const d = Math.abs(pos - main.slicePosition);
    if (d < bestDist) {
      bestDist = d;
      best = k;
    }
  });
  if (best >= 0 && best !== prior.getCurrentImageIdIndex()) {
    try {
      await prior.setImageIdIndex(best);
    } catch (e) {
      markError(ids[best], e);
    }
    updateOverlay("prior");
  }
}

async function openPrior(uid) {
  if (!uid) {
    state.prior = null;
    state.mode = "stack";
    buildLayout();
    await showSeries(state.studies[cfg.study], state.series, "main");
    return;
  }
  const info = cfg.priors.find((p) => p.uid === uid);
  let manifest = state.studies[uid];
  if (!manifest) {
    manifest = await fetchManifest(info.manifest);
    state.studies[uid] = manifest;
  }
  const series = pickSeries(manifest.series, state.series);
  if (!series) {
    setStatus(t("prior_empty", "The prior study has no images here."));
    return;
  }
  state.prior = { study: manifest, series };
  state.mode = "stack";
  buildLayout();
  await showSeries(state.studies[cfg.study], state.series, "main");
  await showSeries(manifest, series, "prior");
  await syncPrior();
  savePrefs({ layout: "1x2" });
}

function pickSeries(list, like) {
  if (!list.length) return null;
  if (like) {
    const same = list.find((s) => s.modality === like.modality && s.description === like.description);
    if (same) return same;
    const mod = list.find((s) => s.modality === like.modality);
    if (mod) return mod;
  }
  return list.reduce((a, b) => (b.instances.length > a.instances.length ? b : a));
}

function toggleCine() {
  const b = $("#btn-cine");
  if (state.cine) {
    clearInterval(state.cine);
    state.cine = null;
  } else {
    state.cine = setInterval(() => {
      const vp = getViewport(activeViewportId);
      const n = vp.type === ViewportType.STACK ? vp.getImageIds().length : vp.getNumberOfSlices();
      const i = vp.type === ViewportType.STACK ? vp.getCurrentImageIdIndex() : vp.getSliceIndex();
      scrollTo((i + 1) % n, activeViewportId);
    }, 100);
  }
  b.setAttribute("aria-pressed", String(!!state.cine));
}

// ---------------------------------------------------------------------------------------
// Preferences (per user, server side)

let prefTimer = null;
let prefPending = {};
function savePrefs(change) {
  prefPending = { ...prefPending, ...change, presets: { ...(prefPending.presets || {}), ...(change.presets || {}) } };
  if (!Object.keys(prefPending.presets).length) delete prefPending.presets;
  Object.assign(state.prefs, change);
  clearTimeout(prefTimer);
  prefTimer = setTimeout(flushPrefs, 300);
}
async function flushPrefs() {
  const body = prefPending;
  prefPending = {};
  prefTimer = null;
  if (!Object.keys(body).length) return;
  try {
    const r = await fetch(cfg.preferences, {
      method: "PUT",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": cfg.csrf },
      body: JSON.stringify(body),
    });
    if (r.ok) state.prefs = await r.json();
  } catch (e) {
    /* preferences are a convenience: never block reading */
  }
}

// ---------------------------------------------------------------------------------------
// Measurements (read by the panel and the test hook)

const MEASURING = new Set([LengthTool.toolName, AngleTool.toolName, EllipticalROITool.toolName]);
function measurements() {
  const out = [];
  for (const a of annotation.state.getAllAnnotations()) {
    if (!MEASURING.has(a.metadata.toolName)) continue;
    const stats = Object.values(a.data.cachedStats || {})[0] || {};
    out.push({
      uid: a.annotationUID,
      tool: a.metadata.toolName,
      length: stats.length,
      angle: stats.angle,
      mean: stats.mean,
      stdDev: stats.stdDev,
      area: stats.area,
      unit: stats.unit || stats.modalityUnit || "",
    });
  }
  return out;
}
function renderMeasurements() {
  const list = $("#measurements");
  if (!list) return;
  list.replaceChildren(
    ...measurements().map((m) => {
      let text = m.tool;
      if (m.length != null) text = `${t("length", "Length")}: ${fmt(m.length, 1)} mm`;
      else if (m.angle != null) text = `${t("angle", "Angle")}: ${fmt(m.angle, 1)}°`;
      else if (m.mean != null) text = `${t("roi", "ROI")}: ${t("mean", "mean")} ${fmt(m.mean, 1)} ${m.unit} · SD ${fmt(m.stdDev, 1)}`;
      return el("li", { "data-testid": "measurement" }, text);
    }),
  );
}

// ---------------------------------------------------------------------------------------
// Keyboard shortcuts

const KEYS = {
  ArrowUp: () => scrollBy(-1),
  ArrowDown: () => scrollBy(1),
  PageUp: () => scrollBy(-10),
  PageDown: () => scrollBy(10),
  Home: () => scrollTo(0, activeViewportId),
  End: () => {
    const vp = getViewport(activeViewportId);
    const n = vp.type === ViewportType.STACK ? vp.getImageIds().length : vp.getNumberOfSlices();
    return scrollTo(n - 1, activeViewportId);
  },
  w: () => applyTool("wl"),
  p: () => applyTool("pan"),
  z: () => applyTool("zoom"),
  s: () => applyTool("scroll"),
  l: () => applyTool("length"),
  a: () => applyTool("angle"),
  e: () => applyTool("ellipse"),
  c: () => applyTool("crosshairs"),
  i: () => toggleInvert(),
  f: () => fit(),
  r: () => fit(),
  "+": () => zoomBy(1.25),
  "-": () => zoomBy(0.8),
  m: () => (state.mode === "mpr" ? exitMpr() : enterMpr()),
  x: () => setProjection(state.projection === "mip" ? "none" : "mip", state.slab || 20),
  n: () => setProjection(state.projection === "minip" ? "none" : "minip", state.slab || 20),
  v: () => setProjection(state.projection === "avg" ? "none" : "avg", state.slab || 20),
  "[": () => rotateOblique(-15),
  "]": () => rotateOblique(15),
  " ": () => toggleCine(),
  1: () => applyPreset("default"),
  2: () => applyPreset("brain"),
  3: () => applyPreset("lung"),
  4: () => applyPreset("bone"),
  5: () => applyPreset("abdomen"),
  6: () => applyPreset("mediastinum"),
  Delete: () => {
    for (const a of annotation.state.getAllAnnotations()) {
      if (MEASURING.has(a.metadata.toolName)) annotation.state.removeAnnotation(a.annotationUID);
    }
    engine.render();
    renderMeasurements();
  },
};
function onKey(e) {
  if (e.target.closest("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
  const fn = KEYS[e.key] || KEYS[e.key.toLowerCase()];
  if (fn) {
    e.preventDefault();
    fn();
  }
}

// ---------------------------------------------------------------------------------------
// Page wiring

function buildSeriesList(manifest) {
  const list = $("#series-list");
  list.replaceChildren(
    ...manifest.series.map((s) => {
      const img = s.thumbnail ? el("img", { src: s.thumbnail, alt: "", loading: "lazy", width: "64", height: "64" }) : el("span", { class: "no-thumb" });
      return el(
        "li",
        {},
        el(
          "button",
          { type: "button", class: "series", "data-series-uid": s.uid, "data-testid": "series-button", onclick: () => showSeries(manifest, s, "main") },
          img,
          el("span", {}, `${s.number ?? ""} ${s.modality} ${s.description}`),
          el("small", {}, `${s.instances.length} ${t("images", "images")}${s.volume.ok ? " · MPR" : ""}`),
        ),
      );
    }),
  );
}

function wireToolbar() {
  document.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => {
    applyTool(b.dataset.tool);
    savePrefs({ tool: b.dataset.tool });
  }));
  $("#preset").addEventListener("change", (e) => applyPreset(e.target.value));
  $("#btn-invert").addEventListener("click", toggleInvert);
  $("#btn-fit").addEventListener("click", fit);
  $("#btn-cine").addEventListener("click", toggleCine);
  $("#btn-mpr").addEventListener("click", () => (state.mode === "mpr" ? exitMpr() : enterMpr()));
  $("#projection").addEventListener("change", (e) => setProjection(e.target.value, state.slab || 20));
  $("#slab").addEventListener("input", (e) => setProjection(state.projection, e.target.value));
  $("#btn-rot-left").addEventListener("click", () => rotateOblique(-15));
  $("#btn-rot-right").addEventListener("click", () => rotateOblique(15));
  const priorSel = $("#prior");
  if (priorSel) priorSel.addEventListener("change", (e) => openPrior(e.target.value));
  const sync = $("#sync");
  if (sync) sync.addEventListener("change", (e) => (syncScroll = e.target.checked));
  document.addEventListener("keydown", onKey);
  for (const evt of [ToolEnums.Events.ANNOTATION_COMPLETED, ToolEnums.Events.ANNOTATION_MODIFIED, ToolEnums.Events.ANNOTATION_REMOVED]) {
    eventTarget.addEventListener(evt, () => setTimeout(renderMeasurements, 0));
  }
  eventTarget.addEventListener(Events.IMAGE_LOADED, (evt) => {
    const id = evt.detail && evt.detail.image && evt.detail.image.imageId;
    if (id) rememberPixelModule(id);
  });
  eventTarget.addEventListener(Events.IMAGE_LOAD_FAILED, (evt) => {
    const d = evt.detail || {};
    if (d.imageId) {
      markError(d.imageId, d.error);
      updateAllOverlays();
    }
  });
  eventTarget.addEventListener(Events.IMAGE_LOAD_ERROR, (evt) => {
    const d = evt.detail || {};
    if (d.imageId) {
      markError(d.imageId, d.error);
      updateAllOverlays();
    }
  });
  window.addEventListener("resize", () => {
    engine.resize(true, true);
    updateAllOverlays();
  });
}

async function main() {
  setStatus(t("starting", "Starting…"));
  await csInit();
  const workers = Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 0));
  loaderInit({ maxWebWorkers: workers });
  toolsInit();
  metaData.addProvider(manifestProvider, 10000);
  metaData.addProvider(pixelFallbackProvider, -1000);
  engine = new RenderingEngine(ENGINE_ID);
  createToolGroups();
  wireToolbar();
  buildLayout();
  // Events can arrive before a debounced scroll settles: a slow refresh keeps the overlay true.
  // It runs directly, not through requestAnimationFrame: Chromium pauses animation frames for a
  // page it considers hidden (a second window, a loaded headless browser), and an overlay that
  // waits for a frame then shows an earlier slice's position beside the current image.
  setInterval(() => {
    healCameras();
    updateAllOverlays();
  }, 250);
  let manifest;
  try {
    manifest = await fetchManifest(cfg.manifest);
  } catch (e) {
    showError(`${t("manifest_failed", "The study could not be loaded")}: ${e.message}`);
    return;
  }
  state.studies[cfg.study] = manifest;
  buildSeriesList(manifest);
  if (!manifest.series.length) {
    showError(t("no_images", "This study has no images yet."));
    state.ready = true;
    return;
  }
  const first = manifest.series.reduce((a, b) => (b.instances.length > a.instances.length ? b : a));
  const remembered = (state.prefs.presets || {})[first.modality];
  if (remembered) state.preset = remembered;
  if (state.prefs.tool) applyTool(state.prefs.tool);
  await showSeries(manifest, first, "main");
  state.ready = true;
  setStatus("");
  if (state.prefs.layout === "mpr" && first.volume.ok) await enterMpr();
}

// ---------------------------------------------------------------------------------------
// Test and automation hook: deterministic state instead of guessed pixels.

window.risViewer = {
  state: () => ({
    ready: state.ready,
    error: state.error,
    mode: state.mode,
    tool: state.tool,
    preset: state.preset,
    invert: state.invert,
    projection: state.projection,
    slab: state.slab,
    series: state.series ? { uid: state.series.uid, modality: state.series.modality, volume: state.series.volume } : null,
    prior: state.prior ? { study: state.prior.study.study.uid, series: state.prior.series.uid } : null,
    volume: { ...state.volume },
    viewports: viewportIds().map(viewportState).filter(Boolean),
    errors: { ...state.errors },
    measurements: measurements(),
    prefs: state.prefs,
    firstImageMs: state.firstImageAt,
    volumeReadyMs: state.volumeReadyAt,
  }),
  worldToCanvas: (id, world) => getViewport(id).worldToCanvas(world),
  canvasToWorld: (id, xy) => getViewport(id).canvasToWorld(xy),
  canvasRect: (id) => {
    const r = getViewport(id).canvas.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  },
  // RGBA of the rendered viewport at a canvas (CSS pixel) position.
  pixel: (id, x, y) => {
    const vp = getViewport(id);
    const c = vp.canvas;
    const ratio = c.width / c.getBoundingClientRect().width;
    const ctx = c.getContext("2d", { willReadFrequently: true });
    return Array.from(ctx.getImageData(Math.round(x * ratio), Math.round(y * ratio), 1, 1).data);
  },
  scrollTo,
  scrollBy,
  applyPreset,
  applyTool,
  toggleInvert,
  enterMpr,
  exitMpr,
  setProjection,
  rotateOblique,
  openPrior,
  fit,
  flushPrefs,
  PRESETS,
};

main().catch((e) => {
  console.error(e);
  showError(`${t("viewer_failed", "The viewer could not start")}: ${e && e.message ? e.message : e}`);
});
