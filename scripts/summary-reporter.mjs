// A node:test reporter that prints one closing line: `N passed, N failed, N skipped`.
export default async function* summary(source) {
  let passed = 0, failed = 0, skipped = 0;
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const d = event.data;
    // count leaf tests only (suites report with details.type === 'suite')
    if (d.details && d.details.type === 'suite') {
      if (event.type === 'test:fail' && d.details.error && d.details.error.failureType !== 'subtestsFailed') failed++;
      continue;
    }
    if (event.type === 'test:fail') failed++;
    else if (d.skip !== undefined && d.skip !== false) skipped++;
    else if (d.todo !== undefined && d.todo !== false) skipped++;
    else passed++;
  }
  yield `\n${passed} passed, ${failed} failed, ${skipped} skipped\n`;
}
