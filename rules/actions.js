// Post-login Actions, run once per runtime that holds an Action. It
// receives Go natives (n) and returns makeEvent and makeApi, which build
// an Action's two arguments from the pipeline's user and context objects
// (the ones rules see). The api writes its effects where a rule would:
// context.multifactor, context.redirect, context.idToken,
// context.accessToken, user.app_metadata and user.user_metadata, and
// tells Go what only Go keeps (a denial, the factors allowed, metadata to
// persist). It declares nothing global.
(function (n) {
  'use strict';

  var hasOwn = Object.prototype.hasOwnProperty;
  var keys = Object.keys;
  var isArray = Array.isArray;
  var URL_ = n.URL;
  var jwt = n.jwt;
  var Error_ = Error;
  var TypeError_ = TypeError;
  var Proxy_ = Proxy;

  function isObject(v) {
    return v !== null && typeof v === 'object';
  }
  function isPlain(v) {
    return isObject(v) && !isArray(v);
  }
  function orEmpty(v) {
    return isObject(v) ? v : {};
  }

  // merge deep-merges src into a copy of dst (objects merge, anything
  // else replaces); the objects it copies along the way are never
  // changed, and __proto__ / constructor / prototype keys are skipped.
  function merge(dst, src, depth) {
    var out = {};
    if (isPlain(dst)) {
      keys(dst).forEach(function (k) { out[k] = dst[k]; });
    }
    if (depth > 32) {
      return out;
    }
    keys(src).forEach(function (k) {
      if (k === '__proto__' || k === 'constructor' || k === 'prototype') {
        return;
      }
      var v = src[k];
      out[k] = isPlain(v) && isPlain(out[k]) ? merge(out[k], v, depth + 1) : v;
    });
    return out;
  }

  // makeEvent is Auth0's migration mapping from a rule's user and context
  // to an Action's event, with overlay (--event) deep-merged last.
  function makeEvent(user, context, secrets, overlay) {
    var req = orEmpty(context.request);
    var auth = orEmpty(context.authentication);
    var ev = {
      user: user,
      client: { client_id: context.clientID, name: context.clientName, metadata: context.clientMetadata || {} },
      connection: { name: context.connection, strategy: context.connectionStrategy },
      request: {
        ip: req.ip,
        hostname: req.hostname,
        user_agent: req.userAgent,
        query: req.query,
        body: req.body,
        geoip: req.geoip
      },
      transaction: { protocol: context.protocol, acr_values: [], requested_scopes: [] },
      authentication: { methods: auth.methods },
      secrets: secrets,
      stats: context.stats
    };
    if (isPlain(overlay)) {
      ev = merge(ev, overlay, 0);
    }
    return ev;
  }

  // factorTypes turns Auth0 factor selectors ({type: 'otp'} or 'otp')
  // into their type names.
  function factorTypes(list) {
    var out = [];
    list.forEach(function (f) {
      var t = isObject(f) ? f.type : f;
      if (typeof t === 'string' && t !== '' && out.indexOf(t) < 0) {
        out.push(t);
      }
    });
    return out;
  }

  function param(req, name) {
    var q = orEmpty(req.query);
    var b = orEmpty(req.body);
    if (hasOwn.call(q, name)) {
      return q[name];
    }
    return hasOwn.call(b, name) ? b[name] : undefined;
  }

  function needSecret(secret) {
    if (typeof secret !== 'string' || secret === '') {
      throw new TypeError_('options.secret must be a non-empty string');
    }
  }

  // cur holds the running Action's user, context and event (begin).
  var cur = { user: null, context: null, event: null };

  // begin points the api at a run's objects; the api itself is built
  // once per runtime and frozen, so no run can change it for the next.
  function begin(user, context, event) {
    cur.user = user;
    cur.context = context;
    cur.event = event;
    return api;
  }

  var api = makeApi();

  function makeApi() {
    var api = {};
    function chain() {
      return api;
    }
    // noop is a namespace whose every method does nothing and returns
    // api: what has no meaning outside Auth0 (SAML responses, session
    // lifetimes, prompts).
    function noop(own) {
      return new Proxy_(own || {}, {
        get: function (t, k) {
          if (hasOwn.call(t, k)) {
            return t[k];
          }
          return typeof k === 'string' && k !== 'then' ? chain : undefined;
        }
      });
    }
    function setMultifactor(mf, requested, factors) {
      cur.context.multifactor = mf;
      n.noteMultifactor(mf, requested, factors);
    }
    function challenge(factors) {
      setMultifactor({ provider: 'any', allowRememberBrowser: false }, '', factorTypes(factors));
      return api;
    }
    function metadata(which, prop) {
      return function (key, value) {
        key = String(key);
        var md = cur.user[prop];
        if (!isObject(md)) {
          md = {};
          cur.user[prop] = md;
        }
        if (value === undefined || value === null) {
          delete md[key];
          value = null;
        } else {
          md[key] = value;
        }
        n.noteMetadata(which, key, value);
        return api;
      };
    }
    function claims(prop) {
      return {
        setCustomClaim: function (name, value) {
          var t = cur.context[prop];
          if (!isObject(t)) {
            t = {};
            cur.context[prop] = t;
          }
          t[String(name)] = value;
          return api;
        },
        addScope: chain,
        removeScope: chain
      };
    }

    api.access = {
      deny: function (reason) {
        n.deny(reason === undefined ? '' : String(reason));
        return api;
      }
    };
    api.multifactor = {
      enable: function (provider, options) {
        var o = orEmpty(options);
        var mf = { provider: provider, allowRememberBrowser: o.allowRememberBrowser === true };
        if (typeof provider === 'string' && provider.trim().toLowerCase() === 'duo') {
          var po = orEmpty(o.providerOptions);
          mf.ikey = po.ikey;
          mf.skey = po.skey;
          mf.host = po.host;
          if (po.username !== undefined) {
            mf.username = po.username;
          }
        }
        setMultifactor(mf, String(provider), null);
        return api;
      }
    };
    api.authentication = {
      challengeWith: function (factor, options) {
        var extra = orEmpty(options).additionalFactors;
        return challenge([factor].concat(isArray(extra) ? extra : []));
      },
      challengeWithAny: function (factors) {
        return challenge(isArray(factors) ? factors : []);
      },
      enrollWith: function (factor, options) {
        var extra = orEmpty(options).additionalFactors;
        return challenge([factor].concat(isArray(extra) ? extra : []));
      },
      enrollWithAny: function (factors) {
        return challenge(isArray(factors) ? factors : []);
      },
      recordMethod: chain,
      setPrimaryUser: chain
    };
    api.redirect = {
      sendUserTo: function (url, options) {
        var u = new URL_(String(url));
        var q = orEmpty(orEmpty(options).query);
        keys(q).forEach(function (k) {
          u.searchParams.set(k, String(q[k]));
        });
        cur.context.redirect = { url: u.toString() };
        return api;
      },
      encodeToken: function (options) {
        var o = orEmpty(options);
        needSecret(o.secret);
        var claims = merge({}, orEmpty(o.payload), 0);
        claims.sub = cur.user.user_id;
        var ereq = orEmpty(cur.event.request);
        if (ereq.hostname) {
          claims.iss = ereq.hostname;
        }
        if (ereq.ip) {
          claims.ip = ereq.ip;
        }
        var ttl = o.expiresInSeconds === undefined ? 900 : Number(o.expiresInSeconds);
        return jwt.sign(claims, o.secret, { algorithm: 'HS256', expiresIn: ttl });
      },
      validateToken: function (options) {
        var o = orEmpty(options);
        needSecret(o.secret);
        var name = o.tokenParameterName || 'session_token';
        var req = orEmpty(cur.event.request);
        var tok = param(req, name);
        if (typeof tok !== 'string' || tok === '') {
          throw new Error_('no "' + name + '" parameter in the request');
        }
        var payload = jwt.verify(tok, o.secret, { algorithms: ['HS256'] });
        var state = param(req, 'state');
        if (typeof state !== 'string' || state === '' || payload.state !== state) {
          throw new Error_('the token\'s state claim does not match the state parameter');
        }
        return payload;
      }
    };
    api.idToken = claims('idToken');
    api.accessToken = claims('accessToken');
    api.user = {
      setAppMetadata: metadata('app', 'app_metadata'),
      setUserMetadata: metadata('user', 'user_metadata')
    };
    api.cache = {
      get: function (key) {
        return n.cacheGet(String(key));
      },
      set: function (key, value, options) {
        var o = orEmpty(options);
        return n.cacheSet(String(key), String(value), Number(o.ttl) || 0, Number(o.expires_at) || 0);
      },
      delete: function (key) {
        return n.cacheDelete(String(key));
      }
    };
    api.session = noop({
      revoke: function (reason) {
        n.deny(reason === undefined ? 'session revoked' : String(reason));
        return api;
      }
    });
    api.rules = {
      wasExecuted: function () {
        return false;
      }
    };
    api.samlResponse = noop();
    api.prompt = noop();
    api.transaction = noop();
    keys(api).forEach(function (k) {
      Object.freeze(api[k]);
    });
    return Object.freeze(api);
  }

  return { makeEvent: makeEvent, begin: begin };
})
