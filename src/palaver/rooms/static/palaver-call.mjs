// palaver-call.js as an ES module: `import Daily from '<palaver>/static/palaver-call.mjs'`
// in place of `import Daily from '@daily-co/daily-js'`. The classic script sets the globals;
// this re-exports them.
import './palaver-call.js';

const PalaverCall = globalThis.PalaverCall;
export default PalaverCall;
export { PalaverCall };
