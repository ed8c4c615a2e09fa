// The net/dgram conformance suite, run against every target in conformance/targets.ts.
import { after, before, describe } from 'node:test';

import { dgramCases } from './conformance/dgram-cases';
import { netCases } from './conformance/net-cases';
import { selectedTargets } from './conformance/targets';

for (const target of selectedTargets()) {
  describe(target.name, () => {
    before(async () => { await target.setup?.(); });
    after(async () => { await target.teardown?.(); });
    netCases(target);
    dgramCases(target);
  });
}
