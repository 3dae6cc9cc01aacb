// Benchmark harness rule, run first in scenario 5. The seed's "Configuring
// Custom MFA" snippets 003_frequency.js and 003_redirect.js call
// conditionIsMet() and condition(), which the seed leaves for the reader
// to write. This rule defines them on `global` (the global object, as in
// Auth0) so that the five seed snippets run unmodified: neither condition
// holds, so they run to the end without changing the outcome. Like a
// helper in an Auth0 rule, they are defined once per runtime (`global`
// outlives a run) rather than on every request.
function (user, context, callback) {
  if (!global.conditionIsMet) {
    global.conditionIsMet = function () { return false; };
    global.condition = function () { return false; };
  }
  callback(null, user, context);
}
