import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { renderSampleConfig } from './sample';

const target = path.join(__dirname, '..', 'docs', 'config.sample.toml');
writeFileSync(target, renderSampleConfig());
console.log(`wrote ${target}`);
