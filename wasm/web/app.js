// The vmsa preview page: reads files, calls vmsa-core (compiled to WebAssembly by the
// `vmsa-wasm` crate) and renders what it returns. No parsing, measuring or diffing happens in
// this file: it only turns the core's answers (JSON) into tables.
import init, * as core from './pkg/vmsa_wasm.js';

const $ = (id) => document.getElementById(id);

const state = {
  file: null,      // { name, bytes } of the main file
  second: null,    // { name, bytes } of the VMSA to diff against
  pages: [],       // Uint8Array per vCPU: the VMSAs of the main file (launch or the page itself)
  dropAt: null,    // performance.now() of the last drop/pick of the main file
  svsm: null,      // { name, bytes } of the SVSM binary (snp:svsm)
  report: null,    // { name, bytes } of the attestation report
  digest: null,    // the launch digest shown (hex)
};

// ---------------------------------------------------------------------------------------------
// Small DOM helpers.

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

const hex = (n, width = 0) => '0x' + n.toString(16).padStart(width, '0');

function showError(context, err) {
  const box = $('error');
  const message = err instanceof Error ? err.message : String(err);
  const line = context ? `${context}: ${message}` : message;
  box.hidden = false;
  box.textContent = box.textContent ? `${box.textContent}\n${line}` : line;
}

function clearError() {
  const box = $('error');
  box.hidden = true;
  box.textContent = '';
}

// Runs one rendering step; an error in it is shown and the other steps still run, so a bad
// file never blanks the page.
function step(context, fn) {
  try {
    return fn();
  } catch (err) {
    showError(context, err);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Renderers.

function fieldRows(fields, differing = new Set()) {
  const body = el('tbody');
  for (const f of fields) {
    const tr = el('tr', { 'data-field': f.name, 'data-offset': hex(f.offset, 3) },
      el('td', { class: 'off', text: hex(f.offset, 3) }),
      el('td', { class: 'name', text: f.name }),
      valueCell(f.decoded));
    if (differing.has(f.name)) tr.classList.add('differs');
    body.append(tr);
  }
  return body;
}

// A decoded value: the raw part, then its flag names or segment description, muted.
function valueCell(decoded) {
  const td = el('td', { class: 'val' });
  const flags = /^(0x[0-9a-f]+) (\(.*\))$/.exec(decoded);
  const segment = /^(sel=\S+ base=\S+ limit=\S+ attr=\S+) (.*)$/.exec(decoded);
  const m = flags ?? segment;
  if (m) td.append(m[1], ' ', el('span', { class: 'flags', text: m[2] }));
  else td.append(decoded);
  return td;
}

function fieldTable(fields, differing) {
  const table = el('table', { class: 'fields' },
    el('thead', {}, el('tr', {}, el('th', { text: 'offset' }), el('th', { text: 'field' }), el('th', { text: 'value' }))));
  table.append(fieldRows(fields, differing));
  return table;
}

// A guest may have thousands of vCPUs; tables for the first ones keep the page responsive
// (every vCPU stays reachable through the diff selector).
const MAX_VCPU_TABLES = 64;

function renderVmsas(views, differingByCpu) {
  const box = $('vmsas');
  box.replaceChildren();
  const grid = el('div', { class: 'vcpus' });
  views.slice(0, MAX_VCPU_TABLES).forEach((view, cpu) => {
    const nonzero = view.fields.length;
    const card = el('div', { class: 'vcpu', id: `vcpu-${cpu}`, 'data-cpu': String(cpu) },
      el('h3', {}, `vCPU ${cpu} `, el('span', { class: 'muted', text: `${nonzero} non-zero fields` })),
      fieldTable(view.fields, differingByCpu[cpu]));
    const link = el('a', { download: `vmsa${cpu}.bin`, text: `download vmsa${cpu}.bin` });
    link.href = URL.createObjectURL(new Blob([state.pages[cpu]], { type: 'application/octet-stream' }));
    card.append(link);
    grid.append(card);
  });
  box.append(grid);
  if (views.length > MAX_VCPU_TABLES) {
    box.append(el('p', { class: 'muted', text: `… and ${views.length - MAX_VCPU_TABLES} more vCPUs: pick one in the diff selector to compare it` }));
  }
  $('vmsas-panel').hidden = views.length === 0;
}

function simpleTable(columns, rows) {
  const head = el('tr');
  for (const c of columns) head.append(el('th', { text: c }));
  const body = el('tbody');
  for (const row of rows) {
    const tr = el('tr');
    for (const cell of row) tr.append(el('td', { text: String(cell) }));
    body.append(tr);
  }
  return el('table', {}, el('thead', {}, head), body);
}

// Big IGVM files have thousands of page headers; the table shows the first ones.
const MAX_HEADER_ROWS = 2000;

function renderFirmware(info) {
  const box = $('firmware');
  box.replaceChildren();
  if (info.kind === 'ovmf') {
    $('firmware-title').textContent = `OVMF image, ${info.size} bytes`;
    box.append(el('h3', { text: 'GUIDed footer table' }),
      simpleTable(['#', 'offset', 'GUID', 'entry', 'value', 'data (hex)'],
        info.entries.map((e) => [e.index, hex(e.offset), e.guid, e.name, e.value, e.data])));
    if (info.sections) {
      box.append(el('h3', { text: `SEV metadata (ASEV), ${info.sections.length} sections` }),
        simpleTable(['#', 'GPA', 'size', 'type'],
          info.sections.map((s, i) => [i, hex(s.gpa), hex(s.size), s.type])));
    }
  } else if (info.kind === 'igvm') {
    $('firmware-title').textContent = `IGVM file, ${info.size} bytes`;
    const shown = info.headers.slice(0, MAX_HEADER_ROWS);
    box.append(el('h3', { text: `Headers and directives, ${info.headers.length}` }),
      simpleTable(['#', 'offset', 'type', 'platform mask'],
        shown.map((h) => [h.index, hex(h.offset), h.type, h.mask === null ? '' : hex(h.mask)])));
    if (info.headers.length > shown.length) box.append(el('p', { class: 'muted', text: `… and ${info.headers.length - shown.length} more` }));
  }
  $('firmware-panel').hidden = false;
}

function renderFindings(findings) {
  const list = $('findings');
  list.replaceChildren();
  for (const f of findings) {
    list.append(el('li', { class: `sev-${f.severity ?? 'note'}`, text: f.message }));
  }
  if (findings.length === 0) list.append(el('li', { text: 'none: KVM launches this state as written' }));
  $('findings-panel').hidden = false;
}

function renderDiff(left, leftName) {
  const panel = $('diff-panel');
  const body = $('diff-table').querySelector('tbody');
  body.replaceChildren();
  if (!state.second || !left) {
    panel.hidden = true;
    return new Set();
  }
  const diffs = JSON.parse(core.diffVmsa(left, state.second.bytes));
  for (const d of diffs) {
    body.append(el('tr', { class: 'differs', 'data-field': d.name, 'data-offset': hex(d.offset, 3) },
      el('td', { class: 'off', text: hex(d.offset, 3) }),
      el('td', { class: 'name', text: d.name }),
      valueCell(d.left), valueCell(d.right)));
  }
  $('diff-left-head').textContent = leftName;
  $('diff-right-head').textContent = state.second.name;
  $('diff-summary').textContent = diffs.length === 0
    ? 'the pages are equal'
    : `${diffs.length} ${diffs.length === 1 ? 'field differs' : 'fields differ'}`;
  panel.hidden = false;
  return new Set(diffs.map((d) => d.name));
}

// ---------------------------------------------------------------------------------------------
// The pipeline: file → detection → firmware view → launch VMSAs, findings, digest → diff.

function options() {
  return {
    mode: $('mode').value,
    vcpus: Number.parseInt($('vcpus').value, 10),
    cpu: $('cpu').value,
    vmm: $('vmm').value,
    features: guestFeatures($('features').value.trim()),
    varsSize: $('vars-size').value.trim(),
    svsmProfile: $('svsm-profile').value,
  };
}

// The launch of the dropped file under the options: OVMF or IGVM, or OVMF with the SVSM binary.
function newLaunch(bytes, o) {
  if (o.mode !== 'snp:svsm') return new core.Launch(bytes, o.mode, o.vcpus, o.cpu, o.vmm, o.features);
  if (!state.svsm) throw new Error('snp:svsm: drop the SVSM binary too');
  let vars;
  try { vars = BigInt(o.varsSize); } catch { throw new Error(`OVMF_VARS size '${o.varsSize}' is not a number`); }
  return core.Launch.svsm(bytes, state.svsm.bytes, vars, o.vcpus, o.cpu, o.svsmProfile);
}

// "0x21" or "33" as the BigInt the core's u64 takes.
function guestFeatures(text) {
  try {
    const n = BigInt(text);
    if (n >= 0n && n < (1n << 64n)) return n;
  } catch { /* reported below */ }
  throw new Error(`guest features '${text}' is not a 64-bit number (0x… or decimal)`);
}

function hideResults() {
  for (const id of ['digest-panel', 'diff-panel', 'findings-panel', 'vmsas-panel', 'firmware-panel', 'report-panel']) $(id).hidden = true;
}

// The attestation module (wasm/web/pkg-report), loaded when the first report is dropped: the
// preview module stays within its budget.
let reportCore = null;
async function loadReportModule() {
  if (!reportCore) {
    const m = await import('./pkg-report/vmsa_wasm_report.js');
    await m.default();
    reportCore = m;
  }
  return reportCore;
}

// The report decoded and its measurement against the launch shown.
function renderReport() {
  if (!state.report || !reportCore) return;
  const r = JSON.parse(reportCore.decodeReport(state.report.bytes));
  state.reportView = r;
  $('report-summary').textContent = `${state.report.name}, version ${r.fields.version}`;
  $('report-text').textContent = r.text;
  $('neighbours-list').replaceChildren();
  const match = $('report-match');
  if (!state.digest) {
    match.textContent = `measurement ${r.measurement} (drop the firmware to compare it with a launch)`;
    $('neighbours').hidden = true;
  } else if (state.digest === r.measurement) {
    match.textContent = 'the report\'s measurement equals the launch shown';
    match.className = 'ok';
    $('neighbours').hidden = true;
  } else {
    match.textContent = `the report's measurement ${r.measurement} is not the launch shown (${state.digest})`;
    match.className = 'differs';
    $('neighbours').hidden = document.body.dataset.kind !== 'ovmf' || $('mode').value !== 'snp';
  }
  $('report-panel').hidden = false;
}

function searchNeighbours() {
  step('search near this launch', () => {
    const o = options();
    const r = state.reportView;
    const out = JSON.parse(reportCore.neighbours(state.file.bytes, r.measurement, o.vcpus, o.cpu, o.vmm, o.features, r.cpu_sig ?? 0));
    const list = $('neighbours-list');
    list.replaceChildren();
    for (const m of out.matches) {
      list.append(el('li', { class: 'neighbour', text: `${m.explanation}: ${m.vcpus} vCPUs, ${m.cpu} (${m.vcpu_sig}), ${m.vmm}, guest features ${m.guest_features}` }));
    }
    if (out.matches.length === 0) {
      list.append(el('li', { text: `no launch near this one gives the report's measurement (${out.searched} searched; vmsa solve searches wider)` }));
    }
  });
}

function render() {
  clearError();
  hideResults();
  $('svsm-options').hidden = $('mode').value !== 'snp:svsm';
  state.pages = [];
  state.digest = null;
  if (!state.file) {
    step('report', renderReport);
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered ?? 0) + 1);
    return;
  }
  const { bytes, name } = state.file;
  const kind = step('detect', () => core.detect(bytes));
  $('file-info').textContent = `${name}: ${bytes.length} bytes, ${kind ?? 'unreadable'}`;
  document.body.dataset.kind = kind ?? '';

  let views = [];
  if (kind === 'ovmf' || kind === 'igvm') {
    step(name, () => renderFirmware(JSON.parse(core.inspectFirmware(bytes))));
    step(`${name}: launch`, () => {
      const o = options();
      const launch = newLaunch(bytes, o);
      try {
        const report = JSON.parse(launch.report());
        state.pages = report.vmsas.map((_, i) => launch.vmsa(i));
        views = report.vmsas;
        $('digest').textContent = report.digest;
        state.digest = report.digest;
        $('digest-mode').textContent = `${report.mode}, ${views.length} vCPU${views.length === 1 ? '' : 's'}`;
        $('digest-panel').hidden = false;
        renderFindings(report.findings);
      } finally {
        launch.free();
      }
    });
  } else {
    // Neither firmware nor IGVM: it must be a VMSA page, and the core says why if it is not.
    step(name, () => {
      views = [JSON.parse(core.inspectVmsa(bytes))];
      state.pages = [bytes];
    });
  }

  const diffCpu = $('diff-cpu');
  const keep = Math.min(Number(diffCpu.value) || 0, Math.max(state.pages.length - 1, 0));
  diffCpu.replaceChildren(...state.pages.map((_, i) => el('option', { value: String(i), text: String(i) })));
  diffCpu.value = String(keep);

  const differing = [];
  step(state.second ? `diff with ${state.second.name}` : 'diff', () => {
    differing[keep] = renderDiff(state.pages[keep], `${name} vCPU ${keep}`);
  });
  step('VMSA table', () => renderVmsas(views, differing));
  if (state.report) step(state.report.name, renderReport);

  if (state.dropAt !== null) {
    const ms = performance.now() - state.dropAt;
    state.dropAt = null;
    document.body.dataset.dropToRenderMs = ms.toFixed(2);
    $('timing').textContent = `file drop to rendered digest: ${ms.toFixed(1)} ms`;
  }
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered ?? 0) + 1);
}

async function readFile(file) {
  return { name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) };
}

async function takeMain(file) {
  state.dropAt = performance.now();
  try {
    state.file = await readFile(file);
  } catch (err) {
    showError(file.name, err);
    return;
  }
  render();
}

async function takeSvsm(file) {
  try {
    state.svsm = await readFile(file);
    $('file3-info').textContent = `${state.svsm.name}: ${state.svsm.bytes.length} bytes`;
  } catch (err) {
    showError(file.name, err);
    return;
  }
  render();
}

async function takeReport(file) {
  try {
    state.report = await readFile(file);
    $('file4-info').textContent = `${state.report.name}: ${state.report.bytes.length} bytes`;
    await loadReportModule();
  } catch (err) {
    showError(file.name, err);
    return;
  }
  render();
}

async function takeSecond(file) {
  try {
    state.second = await readFile(file);
    $('file2-info').textContent = `${state.second.name}: ${state.second.bytes.length} bytes`;
    $('clear2').hidden = false;
  } catch (err) {
    showError(file.name, err);
    return;
  }
  render();
}

function wireDrop(zone, input, take) {
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const file = e.dataTransfer?.files?.[0];
    if (file) take(file);
  });
  input.addEventListener('change', () => { if (input.files[0]) take(input.files[0]); input.value = ''; });
}

async function main() {
  // A file dropped anywhere else must not navigate away from the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
  try {
    await init();
  } catch (err) {
    showError('loading vmsa_wasm.wasm (run wasm/build.sh first)', err);
    return;
  }
  $('version').textContent = core.version();
  const catalog = JSON.parse(core.catalog());
  $('cpu').replaceChildren(...catalog.cpu_types.map((c) => el('option', { value: c, text: c })));
  $('cpu').value = catalog.default_cpu_type;
  $('vmm').replaceChildren(...catalog.vmm_profiles.map((v) => el('option', { value: v, text: v })));
  $('vmm').value = catalog.default_vmm_profile;

  wireDrop($('drop'), $('file'), takeMain);
  wireDrop($('drop2'), $('file2'), takeSecond);
  wireDrop($('drop3'), $('file3'), takeSvsm);
  wireDrop($('drop4'), $('file4'), takeReport);
  $('neighbours').addEventListener('click', searchNeighbours);
  $('clear2').addEventListener('click', () => {
    state.second = null;
    $('file2-info').textContent = 'no file';
    $('clear2').hidden = true;
    render();
  });
  for (const id of ['mode', 'vcpus', 'cpu', 'vmm', 'features', 'diff-cpu', 'vars-size', 'svsm-profile']) $(id).addEventListener('change', render);
  document.body.dataset.ready = 'true';
}

main();
