// Target (issue 10): the supervisor's own files in the stage-2 image (dist/,
// production node_modules, package.json, config-examples/ under /opt/infer-dev)
// take at most 60 MB besides the Node binary. Reported beside it: what stage-2
// adds to stage-1 without dev tools (the Node binary, those files, the layout),
// and the biggest packages in node_modules.
//
// Method: the images built by docker/build.sh (WITH_DEV_TOOLS=0) on the local
// Debian 12 base; sizes from `podman image inspect` and `du` inside the image.
import { buildImages, podman, STAGE1, STAGE2 } from '../test/images/support/podman.mjs';
import { fmt, table } from './lib.mjs';

export const name = 'image-size';

const LIMIT_MB = 60;
const MB = 1e6;

export async function run() {
  buildImages();
  const size = (image) => Number(JSON.parse(podman(['image', 'inspect', image]))[0].Size);
  const [stage1, stage2] = [size(STAGE1), size(STAGE2)];
  const du = podman([
    'run', '--rm', '--entrypoint', '/bin/sh', STAGE2, '-c',
    // One du per path: a single du counts a folder inside an earlier one as nothing.
    'for p in /usr/local/bin/node /opt/infer-dev /opt/infer-dev/dist /opt/infer-dev/node_modules; do du -sb $p; done; du -sb /opt/infer-dev/node_modules/* | sort -rn | head -5',
  ]).trim().split('\n').map((l) => l.split('\t'));
  const bytes = Object.fromEntries(du.slice(0, 4).map(([b, path]) => [path, Number(b)]));
  const own = bytes['/opt/infer-dev'];
  const added = stage2 - stage1;
  const markdown = [
    `### ${name}: what stage-2 adds to stage-1 (WITH_DEV_TOOLS=0)`,
    '',
    table(
      ['part', 'MB'],
      [
        ['stage-1 image', fmt(stage1 / MB, 1)],
        ['stage-2 image', fmt(stage2 / MB, 1)],
        ['added by stage-2', fmt(added / MB, 1)],
        ['  Node binary (/usr/local/bin/node)', fmt(bytes['/usr/local/bin/node'] / MB, 1)],
        ['  supervisor files (/opt/infer-dev)', fmt(own / MB, 1)],
        ['    dist/', fmt(bytes['/opt/infer-dev/dist'] / MB, 1)],
        ['    node_modules/', fmt(bytes['/opt/infer-dev/node_modules'] / MB, 1)],
        ...du.slice(4).map(([b, path]) => [`      ${path.replace('/opt/infer-dev/node_modules/', '')}`, fmt(Number(b) / MB, 1)]),
      ],
    ),
  ].join('\n');
  const summary = [
    {
      benchmark: 'image: supervisor files in stage-2 (besides Node)',
      measured: `${fmt(own / MB, 1)} MB`,
      reference: `stage-2 adds ${fmt(added / MB, 1)} MB to stage-1, ${fmt(bytes['/usr/local/bin/node'] / MB, 1)} MB of it the Node binary`,
      ratioOrLimit: `<= ${LIMIT_MB} MB`,
      target: 'dist + production node_modules, koffi for this platform only',
      pass: own <= LIMIT_MB * MB,
    },
  ];
  return { markdown, summary, data: { stage1, stage2, added, bytes } };
}
