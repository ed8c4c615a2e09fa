// Writes dist/lib/msocket.mjs: an ES module re-exporting the CommonJS build, so that
// `import { newStack } from 'msockets'` and `require('msockets')` share one instance.
'use strict';
const fs = require('fs');
const path = require('path');
const dist = path.join(__dirname, '..', 'dist', 'lib');
const cjs = require(path.join(dist, 'msocket.js'));
const names = Object.keys(cjs).filter((n) => n !== 'default' && n !== '__esModule');
const body = [
  "import cjs from './msocket.js';",
  `export const { ${names.join(', ')} } = cjs;`,
  'export default cjs;',
  '',
].join('\n');
fs.writeFileSync(path.join(dist, 'msocket.mjs'), body);
