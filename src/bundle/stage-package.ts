// Builds a complete, checked package in a staging directory: extract (every
// entry checked first), pick the package root, check the links on the whole
// tree and create them, check bin/llama-server, run it, write the helper shims
// and `.installed-from.json`. Nothing outside the staging directory is
// touched; the caller renames the result into place, or removes staging.
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { writeLlamaShims } from '../boot/shims.ts';
import { writeRecord } from './activate.ts';
import { ArchiveError } from './archive-error.ts';
import type { ArchiveFormat } from './detect-format.ts';
import { EntryTree } from './entry-policy.ts';
import { extractTar } from './extract-tar.ts';
import { extractZip } from './extract-zip.ts';
import { checkPackageFiles, choosePackageRoot } from './package-layout.ts';
import type { Progress } from './progress.ts';
import { getFreeBytes, SpaceBudget } from './space-budget.ts';
import { writeSymlinks } from './symlinks.ts';
import { verifyLlamaServer } from './verify.ts';

export interface StageOptions {
  /** The cached archive to read. */
  file: string;
  /** Its size, for progress. */
  size: number;
  /** The archive's own name, for messages and the record. */
  archiveName: string;
  format: ArchiveFormat;
  sha256: string;
  /** An empty directory on the same filesystem as the versions. */
  staging: string;
  /** Where free space is reported (the versions directory). */
  spaceWhere: string;
  verify: boolean;
  env: NodeJS.ProcessEnv;
  /** LD_LIBRARY_PATH entries to ignore while verifying (the installs). */
  excludeLibraryDirs: readonly string[];
  shimCommand?: readonly string[];
  progress: Progress;
  signal?: AbortSignal;
}

/** The staged package, ready to be renamed into place. */
export interface StagedPackage {
  dir: string;
  version: string | null;
  warnings: string[];
  timingsMs: { extract: number; verify: number };
}

/** Extracts and checks a package in `staging`; throws ArchiveError (exit 2) for anything wrong with it. */
export async function stagePackage(o: StageOptions): Promise<StagedPackage> {
  const warnings: string[] = [];
  const tree = new EntryTree();
  const budget = new SpaceBudget({ free: await getFreeBytes(o.staging), where: o.spaceWhere });
  const extractStarted = Date.now();
  const task = o.progress.start('extracting', o.size);
  const common = { file: o.file, archiveName: o.archiveName, dest: o.staging, tree, budget, onProgress: (n: number) => task.update(n), signal: o.signal };
  let withoutUnixModes = false;
  if (o.format === 'zip') ({ withoutUnixModes } = await extractZip(common));
  else await extractTar({ ...common, gzip: o.format === 'tar.gz' });
  task.finish();

  const choice = choosePackageRoot(tree);
  if (!choice.ok) throw new ArchiveError(o.archiveName, choice.reason);
  if (choice.ignored.length > 0) warnings.push(`ignored top-level entries outside ${choice.root}/: ${choice.ignored.join(', ')}`);
  const { problems, dangling } = tree.checkLinks(choice.root);
  if (problems.length > 0) throw new ArchiveError(o.archiveName, problems[0].reason, { entry: problems[0].link.name, offset: problems[0].link.offset });
  for (const link of dangling) warnings.push(`symlink ${link.path} -> ${link.target} points to nothing in the package`);
  await writeSymlinks({ dest: o.staging, links: tree.links, root: choice.root });
  const dir = join(o.staging, choice.root);
  const files = await checkPackageFiles({ dir, withoutUnixModes });
  if (files.error) throw new ArchiveError(o.archiveName, files.error);
  warnings.push(...files.warnings);
  const extractMs = Date.now() - extractStarted;

  const verifyStarted = Date.now();
  let version: string | null = null;
  if (o.verify) {
    const result = await verifyLlamaServer({ dir, env: o.env, excludeDirs: o.excludeLibraryDirs });
    if (!result.ok) throw new ArchiveError(o.archiveName, `the package's llama-server does not run: ${result.reason}`);
    version = result.versionLine;
  }
  const verifyMs = Date.now() - verifyStarted;

  const shims = await writeLlamaShims({ dir, command: o.shimCommand });
  if (shims.state !== 'ok') warnings.push(shims.message);
  const now = new Date();
  await writeRecord(dir, {
    archive_name: o.archiveName,
    sha256: o.sha256,
    installed_at: now.toISOString(),
    installed_at_unix: Math.floor(now.getTime() / 1000),
    version,
  });
  await chmod(dir, 0o755);
  return { dir, version, warnings, timingsMs: { extract: extractMs, verify: verifyMs } };
}
