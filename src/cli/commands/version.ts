// supervisor version
import { EXIT } from '../../errors.ts';
import { VERSION } from '../version.ts';

export default async function version(): Promise<number> {
  process.stdout.write(`supervisor ${VERSION}\n`);
  return EXIT.OK;
}
