// End-to-end test of the vmsa preview page (wasm/web) in Debian's headless Chromium.
//
// It serves wasm/web from a local server, drops real files on the page the way a person does
// (a `drop` event carrying a File), and checks what the page shows against the `vmsa` CLI, the
// sev-snp-measure peer and the peer's test vectors. It measures the time from dropping Debian's
// OVMF_CODE.fd (4 vCPUs, SNP, EPYC-v4) to the rendered digest, and leaves a screenshot in
// wasm/e2e/out/page.png for a person to look at.
//
// Needs: wasm/build.sh run first (wasm/web/pkg), the `vmsa` binary (VMSA_BIN, default
// target/debug/vmsa), /usr/bin/chromium, /usr/share/OVMF/OVMF_CODE.fd, sev-snp-measure 0.0.13,
// and sev-snp-measure's fixtures, committed under tests/data/sev-snp-measure.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const web = join(repo, 'wasm', 'web');
const out = join(here, 'out');
const fixtures = join(repo, 'tests', 'data', 'sev-snp-measure');
const vmsaBin = process.env.VMSA_BIN ?? join(repo, 'target', 'debug', 'vmsa');
const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';

const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', ...opts }).trim();

// Files the page is given, by name. The page never sees a path: the test fetches them from
// this server inside the page and drops them as Files.
const ovmf = readFileSync(OVMF);
const suffixName = 'ovmf_AmdSev_suffix.bin';
const suffix = readFileSync(join(fixtures, suffixName));
const vectors = JSON.parse(readFileSync(join(fixtures, 'vectors.json'), 'utf8'));

// vCPU 1 of a 4-vCPU SNP launch of OVMF_CODE.fd, dumped by the peer (sev-snp-measure
// --dump-vmsa writes vmsa0.bin… into its working directory).
const dumpDir = mkdtempSync(join(tmpdir(), 'vmsa-e2e-dump-'));
run('sev-snp-measure', ['--mode', 'snp', '--vcpus', '4', '--vcpu-type', 'EPYC-v4', '--ovmf', OVMF, '--dump-vmsa'], { cwd: dumpDir });
const peerAp = readFileSync(join(dumpDir, 'vmsa1.bin'));
// The same page with RIP (offset 0x178) changed, as a real launch that went elsewhere would.
const changedAp = Buffer.from(peerAp);
changedAp.writeBigUInt64LE(0x1234n, 0x178);

// An IGVM file from the repository's IGVM fuzz seeds (built by the IGVM reader's tests).
const igvmName = 'snp-small.igvm';
const igvmPath = join(repo, 'fuzz', 'seeds', 'igvm', igvmName);

// The same file signed by the CLI (`vmsa id-block --igvm-out`), and sev-snp-measure's SVSM
// fixtures (tests/data/svsm).
const signedPath = join(dumpDir, 'signed.igvm');
run(vmsaBin, ['id-block', '--id-key', join(repo, 'tests', 'data', 'keys', 'id-sec1.pem'), '--igvm-out', signedPath, '--', '--mode', 'snp', '--igvm', igvmPath]);
const svsmDir = join(repo, 'tests', 'data', 'svsm');

// A real Genoa report (tests/data/reports) with its MEASUREMENT replaced by a 6-vCPU launch of
// the AmdSev fixture (its signature no longer verifies; the page does not check signatures).
const genoa = readFileSync(join(repo, 'tests', 'data', 'reports', 'genoa-v5-oak.report.bin'));
const sixVcpus = run(vmsaBin, ['measure', '--mode', 'snp', '--vcpus', '6', '--vcpu-type', 'EPYC-Milan', '--ovmf', join(fixtures, suffixName)]);
const report6 = Buffer.from(genoa);
Buffer.from(sixVcpus, 'hex').copy(report6, 0x90);

const files = {
  [igvmName]: readFileSync(igvmPath),
  'genoa.report.b64': Buffer.from(genoa.toString('base64')),
  'report-6.bin': report6,
  'signed.igvm': readFileSync(signedPath),
  'svsm_ovmf.fd': readFileSync(join(svsmDir, 'svsm_ovmf.fd')),
  'svsm.bin': readFileSync(join(svsmDir, 'svsm.bin')),
  'OVMF_CODE.fd': ovmf,
  [suffixName]: suffix,
  'vmsa1-peer.bin': peerAp,
  'vmsa1-changed.bin': changedAp,
  'OVMF_CODE-truncated.fd': ovmf.subarray(0, 1_000_000),
  'vmsa-truncated.bin': peerAp.subarray(0, 4000),
};

const mime = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm' };

function serve(req, res) {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname.startsWith('/__files/')) {
    const body = files[decodeURIComponent(url.pathname.slice('/__files/'.length))];
    if (!body) return void res.writeHead(404).end();
    return void res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
  }
  const path = normalize(join(web, url.pathname === '/' ? 'index.html' : url.pathname));
  if (!path.startsWith(web + sep) || !existsSync(path)) return void res.writeHead(404).end();
  res.writeHead(200, { 'content-type': mime[extname(path)] ?? 'application/octet-stream' });
  res.end(readFileSync(path));
}

let server;
let context;
let page;
let origin;
let userDataDir;
const pageErrors = [];
let coldDropMs; // the page's first drop: the WebAssembly module not yet optimized by the browser

// Drops a served file on a drop zone as a File in a DataTransfer, like a person dragging it.
async function drop(zone, name) {
  await page.evaluate(async ({ zone, name }) => {
    const bytes = await (await fetch(`/__files/${encodeURIComponent(name)}`)).arrayBuffer();
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name));
    document.getElementById(zone).dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, { zone, name });
}

// Waits until the page has rendered once more than `before`.
async function rendered(before) {
  await page.waitForFunction((n) => Number(document.body.dataset.rendered ?? 0) > n, before, { timeout: 10_000 });
}

const renders = () => page.evaluate(() => Number(document.body.dataset.rendered ?? 0));

async function setOptions({ mode, vcpus, cpu, vmm = 'qemu', features = '0x1' }) {
  await page.selectOption('#mode', mode);
  await page.fill('#vcpus', String(vcpus));
  await page.selectOption('#cpu', cpu);
  await page.selectOption('#vmm', vmm);
  await page.fill('#features', features);
}

async function dropAndRender(zone, name) {
  const n = await renders();
  await drop(zone, name);
  await rendered(n);
}

const text = (selector) => page.textContent(selector);
const errorText = () => page.evaluate(() => { const e = document.getElementById('error'); return e.hidden ? '' : e.textContent; });

describe('vmsa preview page in headless Chromium', () => {
  before(async () => {
    server = createServer(serve);
    await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
    origin = `http://127.0.0.1:${server.address().port}`;
    userDataDir = mkdtempSync(join(tmpdir(), 'vmsa-e2e-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    page = context.pages()[0] ?? await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => { if (msg.type() === 'error') pageErrors.push(msg.text()); });
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 10_000 });
  });

  after(async () => {
    await context?.close();
    server?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    rmSync(dumpDir, { recursive: true, force: true });
  });

  test('OVMF_CODE.fd, 4 vCPUs, SNP, EPYC-v4: digest equals the CLI and sev-snp-measure', async () => {
    await setOptions({ mode: 'snp', vcpus: 4, cpu: 'EPYC-v4' });
    await dropAndRender('drop', 'OVMF_CODE.fd');
    coldDropMs = Number(await page.evaluate(() => document.body.dataset.dropToRenderMs));
    assert.equal(await errorText(), '');
    const args = ['--mode', 'snp', '--vcpus', '4', '--vcpu-type', 'EPYC-v4', '--ovmf', OVMF];
    const cli = run(vmsaBin, ['measure', ...args]);
    const peer = run('sev-snp-measure', args);
    assert.match(cli, /^[0-9a-f]{96}$/);
    assert.equal(await text('#digest'), cli);
    assert.equal(cli, peer);
    assert.equal(await page.evaluate(() => document.body.dataset.kind), 'ovmf');
    // The firmware view: the footer table names the SEV-ES reset block, and the metadata
    // sections of Debian's image (research note measure.md §2) are listed.
    const firmware = await text('#firmware');
    assert.match(firmware, /00f771de-1a7e-4fcb-890e-68c77e2fb44e/);
    // Its value decoded by the core, and its data: 0x80b004, little-endian.
    assert.match(firmware, /SEV-ES reset block\s*AP reset address 0x80b004\s*04b08000/);
    assert.equal(await page.locator('#firmware table').nth(1).locator('tbody tr').count(), 5);
  });

  test('the VMSA table shows each vCPU with its decoded fields', async () => {
    assert.equal(await page.locator('#vmsas .vcpu').count(), 4);
    const row = (cpu, field) => page.locator(`#vcpu-${cpu} tr[data-field="${field}"] td.val`);
    // BSP at the reset vector, RDX = CPUID signature of EPYC-v4 (QEMU x86_cpu_reset).
    assert.equal(await row(0, 'rip').textContent(), '0xfff0');
    assert.equal(await row(0, 'rdx').textContent(), '0x800f12');
    assert.match(await row(0, 'cs').textContent(), /^sel=f000 base=ffff0000 limit=ffff attr=09b code/);
    // APs start at the SEV-ES reset block: CS base 0x800000, RIP 0xb004.
    assert.equal(await row(1, 'rip').textContent(), '0xb004');
    assert.match(await row(1, 'cs').textContent(), /base=800000/);
    assert.match(await row(0, 'sev_features').textContent(), /^0x1 \(.*SNP/);
    assert.match(await row(0, 'cr0').textContent(), /^0x10 \(ET\)$/);
    assert.match(await row(0, 'efer').textContent(), /^0x1000 \(SVME\)$/);
  });

  test('a VMSA dumped by sev-snp-measure equals the page\'s vCPU 1; a changed one is highlighted', async () => {
    await page.selectOption('#diff-cpu', '1');
    await dropAndRender('drop2', 'vmsa1-peer.bin');
    assert.equal(await errorText(), '');
    assert.equal(await text('#diff-summary'), 'the pages are equal');
    assert.equal(await page.locator('#diff-table tbody tr').count(), 0);

    await dropAndRender('drop2', 'vmsa1-changed.bin');
    assert.equal(await text('#diff-summary'), '1 field differs');
    const diffRow = page.locator('#diff-table tbody tr');
    assert.equal(await diffRow.count(), 1);
    assert.equal(await diffRow.getAttribute('data-field'), 'rip');
    assert.equal(await diffRow.getAttribute('data-offset'), '0x178');
    assert.deepEqual(await diffRow.locator('td').allTextContents(), ['0x178', 'rip', '0xb004', '0x1234']);
    // In the VMSA table, only vCPU 1's rip row is highlighted.
    assert.deepEqual(await page.locator('#vmsas tr.differs').evaluateAll(
      (rows) => rows.map((r) => `${r.closest('.vcpu').dataset.cpu}:${r.dataset.field}`)), ['1:rip']);
    const color = await page.locator('#vcpu-1 tr.differs td').first().evaluate((td) => getComputedStyle(td).backgroundColor);
    assert.notEqual(color, 'rgba(0, 0, 0, 0)');
    // For a person to look at: digest, diff and highlighted row (not committed).
    mkdirSync(out, { recursive: true });
    await page.screenshot({ path: join(out, 'page.png'), fullPage: true });
    console.log(`# screenshot: ${join(out, 'page.png')}`);
  });

  test('time from file drop to rendered digest (OVMF_CODE.fd, 4 vCPUs, SNP)', async () => {
    await page.click('#clear2');
    await setOptions({ mode: 'snp', vcpus: 4, cpu: 'EPYC-v4' });
    const samples = [];
    for (let i = 0; i < 7; i += 1) {
      await dropAndRender('drop', 'OVMF_CODE.fd');
      samples.push(Number(await page.evaluate(() => document.body.dataset.dropToRenderMs)));
    }
    const sorted = [...samples].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    console.log(`# drop-to-digest OVMF_CODE.fd (${ovmf.length} bytes) 4 vCPUs SNP: median ${median.toFixed(1)} ms, `
      + `min ${sorted[0].toFixed(1)} ms, max ${sorted.at(-1).toFixed(1)} ms over ${samples.length} drops `
      + `[${samples.map((s) => s.toFixed(1)).join(', ')}]; first drop on a fresh page ${coldDropMs?.toFixed(1)} ms`);
    assert.ok(samples.every((s) => Number.isFinite(s) && s > 0));
  });

  test('the peer fixture gives the peer\'s test-vector digests', async () => {
    const picked = vectors.vectors.filter((v) => v.firmware === suffixName && v.kernel === null
      && v.vmm === 'qemu' && !v.snp_ovmf_hash);
    assert.ok(picked.length > 0);
    const modes = { snp: 'snp', seves: 'sev-es', sev: 'sev' };
    for (const v of picked) {
      const cpu = { '0x800f12': 'EPYC-v4' }[v.vcpu_sig] ?? null;
      if (!cpu || !modes[v.mode]) continue;
      await setOptions({ mode: modes[v.mode], vcpus: v.vcpus, cpu, features: v.guest_features ?? '0x1' });
      await dropAndRender('drop', suffixName);
      assert.equal(await errorText(), '', v.name);
      assert.equal(await text('#digest'), v.digest, v.name);
    }
  });

  // The CLI's digest of this file is the igvm crate's (tests/measure_igvm.rs,
  // the_browser_tests_igvm_file_measures_as_the_igvm_crate_does), so the page is anchored through it.
  test('an IGVM file: headers, VMSAs and the digest `vmsa measure --igvm` prints', async () => {
    // The file has VP contexts for vCPUs 0 and 1.
    await setOptions({ mode: 'snp', vcpus: 2, cpu: 'EPYC-v4' });
    await dropAndRender('drop', igvmName);
    assert.equal(await page.evaluate(() => document.body.dataset.kind), 'igvm');
    assert.equal(await errorText(), '');
    const cli = run(vmsaBin, ['measure', '--mode', 'snp', '--igvm', igvmPath, '--ignore-idblock']);
    assert.match(cli, /^[0-9a-f]{96}$/);
    assert.equal(await text('#digest'), cli);
    assert.match(await text('#firmware'), /SUPPORTED_PLATFORM/);
    assert.match(await text('#firmware'), /PAGE_DATA/);
    assert.equal(await page.locator('#vmsas .vcpu').count(), 2);
    // vCPU 1's context is refused (GPA, DR7, sev_features) and the ID block expects another digest.
    assert.equal(await page.locator('#findings li.sev-error').count(), 4);
    assert.match(await text('#findings'), /vCPU 1: not reproduced: 0x418 x87_rip/);
    assert.match(await text('#findings'), /SNP_ID_BLOCK: launch digest differs, policy 0x[0-9a-f]+, ID key digest/);
  });

  test('an IGVM file signed by vmsa id-block: the ID block binds the digest, its key digest is the CLI\'s', async () => {
    await setOptions({ mode: 'snp', vcpus: 2, cpu: 'EPYC-v4' });
    await dropAndRender('drop', 'signed.igvm');
    assert.equal(await errorText(), '');
    const verified = run(vmsaBin, ['id-block', '--verify-igvm', signedPath]);
    const idKey = verified.match(/id_key_digest: +([0-9a-f]{96})/)[1];
    assert.match(await text('#findings'), new RegExp(`SNP_ID_BLOCK: launch digest matches, policy 0x[0-9a-f]+, ID key digest ${idKey}, no author key`));
    // The ID block's digest error of the unsigned file is gone: three refusals of vCPU 1 remain.
    assert.equal(await page.locator('#findings li.sev-error').count(), 3);
  });

  test('snp:svsm: OVMF and the SVSM binary give the CLI\'s digest and the measured launch\'s', async () => {
    await setOptions({ mode: 'snp:svsm', vcpus: 2, cpu: 'EPYC-v4' });
    assert.equal(await page.locator('#svsm-options').isHidden(), false);
    await dropAndRender('drop3', 'svsm.bin');
    await dropAndRender('drop', 'svsm_ovmf.fd');
    assert.equal(await errorText(), '');
    const cli = run(vmsaBin, ['measure', '--mode', 'snp:svsm', '--vcpus', '2', '--vcpu-type', 'EPYC-v4', '--ovmf', join(svsmDir, 'svsm_ovmf.fd'), '--svsm', join(svsmDir, 'svsm.bin'), '--vars-size', '540672']);
    // sev-snp-measure's first recorded digest of this launch (its commit 0a1396f).
    assert.equal(cli, '4ae03ca013690e956bc1eb16bc1c6465788dba64ad88a650db09216fa9cdddf06167bfce810eba8988108e71458dd68b');
    assert.equal(await text('#digest'), cli);
    assert.match(await text('#digest-mode'), /SEV-SNP with SVSM, 2 vCPUs/);
    // The peer's page, MXCSR 0x1f80 in every VMSA: its 0.0.13 digest.
    const n = await renders();
    await page.selectOption('#svsm-profile', 'sev-snp-measure');
    await rendered(n);
    const peer = run('sev-snp-measure', ['--mode', 'snp:svsm', '--vcpus', '2', '--vcpu-type', 'EPYC-v4', '--ovmf', join(svsmDir, 'svsm_ovmf.fd'), '--svsm', join(svsmDir, 'svsm.bin'), '--vars-size', '540672']);
    assert.equal(await text('#digest'), peer);
    // A variable store QEMU's pflash would refuse.
    const m = await renders();
    await page.fill('#vars-size', '4097');
    await page.dispatchEvent('#vars-size', 'change');
    await rendered(m);
    assert.match(await errorText(), /non-zero multiple of 0x1000/);
    await page.fill('#vars-size', '540672');
    await page.selectOption('#svsm-profile', 'launch');
    await page.selectOption('#mode', 'snp');
  });

  test('a 512-vCPU guest: 64 VMSA tables, the rest reachable through the diff selector', async () => {
    await setOptions({ mode: 'snp', vcpus: 512, cpu: 'EPYC-v4' });
    await dropAndRender('drop', 'OVMF_CODE.fd');
    assert.equal(await errorText(), '');
    assert.equal(await page.locator('#vmsas .vcpu').count(), 64);
    assert.match(await text('#vmsas'), /… and 448 more vCPUs/);
    assert.equal(await page.locator('#diff-cpu option').count(), 512);
    const cli = run(vmsaBin, ['measure', '--mode', 'snp', '--vcpus', '512', '--vcpu-type', 'EPYC-v4', '--ovmf', OVMF]);
    assert.equal(await text('#digest'), cli);
    // Anchored outside our code: the peer's digest of the same 512-vCPU launch.
    const peer = run('sev-snp-measure', ['--mode', 'snp', '--vcpus', '512', '--vcpu-type', 'EPYC-v4', '--ovmf', OVMF]);
    assert.equal(await text('#digest'), peer);
  });

  test('a report: decoded; its measurement against the launch shown; the launches near it searched', async () => {
    await setOptions({ mode: 'snp', vcpus: 4, cpu: 'EPYC-Milan' });
    await dropAndRender('drop', suffixName);
    await dropAndRender('drop4', 'report-6.bin');
    assert.equal(await errorText(), '');
    assert.match(await text('#report-match'), /is not the launch shown/);
    assert.match(await text('#report-text'), /0x188 cpuid {14}family 0x19 model 0x11 stepping 0x1: Genoa/);
    await page.click('#neighbours');
    await page.waitForSelector('#neighbours-list li');
    assert.match(await text('#neighbours-list'), /the report matches 6 vCPUs, not 4: 6 vCPUs, EPYC-Milan \(0xa00f11\), qemu/);
    // The launch the report names: equal.
    const n = await renders();
    await page.fill('#vcpus', '6');
    await page.dispatchEvent('#vcpus', 'change');
    await rendered(n);
    assert.match(await text('#report-match'), /equals the launch shown/);
    // The real report, in base64: decoded the way `vmsa report` prints it.
    await dropAndRender('drop4', 'genoa.report.b64');
    const cli = run(vmsaBin, ['report', join(repo, 'tests', 'data', 'reports', 'genoa-v5-oak.report.bin')]);
    assert.equal(await text('#report-text'), cli);
    assert.match(await text('#report-match'), /is not the launch shown/);
  });

  test('truncated files give readable errors and the page stays up', async () => {
    await dropAndRender('drop', 'OVMF_CODE-truncated.fd');
    assert.match(await errorText(), /OVMF_CODE-truncated\.fd: .*1000000 bytes/);
    assert.equal(await page.locator('#digest-panel').isHidden(), true);
    await dropAndRender('drop', 'vmsa-truncated.bin');
    assert.match(await errorText(), /vmsa-truncated\.bin: a VMSA is a 4096-byte page \(or QEMU's 1648-byte save area\), but the input has 4000 bytes/);
    // Still alive: a good file renders again.
    await dropAndRender('drop', 'vmsa1-peer.bin');
    assert.equal(await errorText(), '');
    assert.equal(await page.locator('#vmsas .vcpu').count(), 1);
    assert.deepEqual(pageErrors, []);
  });
});
