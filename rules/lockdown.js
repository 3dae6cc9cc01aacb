// Lockdown, run once per runtime after every global is defined and before
// any rule is instantiated. It makes the built-ins (the standard library,
// stepup's globals and their prototypes) immutable, so that no run can
// change what a later run on the same runtime sees. The global object
// itself stays open: rules cache values on `global`, as in Auth0. extra
// are built-ins no global names (the jsonwebtoken error classes). It
// returns harden, which freezes what a module adds later. maxString
// (> 0) bounds the strings String.prototype.repeat, padStart and padEnd
// make: one such call allocates before any check can stop it.
(function (global, extra, maxString) {
  'use strict';

  var freeze = Object.freeze;
  var getPrototypeOf = Object.getPrototypeOf;
  var getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
  var defineProperty = Object.defineProperty;
  var ownKeys = Reflect.ownKeys;
  var hasOwn = Object.prototype.hasOwnProperty;
  var TypeError_ = TypeError;
  var roots = extra.slice();
  ownKeys(global).forEach(function (k) {
    var d = getOwnPropertyDescriptor(global, k);
    roots.push(d.value, d.get, d.set);
  });

  // overridable turns a data property of a built-in prototype into an
  // accessor, so that objects inheriting it can still get their own
  // property of that name by assignment ("the override mistake": a
  // frozen prototype's read-only property otherwise blocks
  // `MyError.prototype.name = ...` and `obj.toString = ...`). Assigning
  // it on the prototype itself throws a TypeError, in sloppy mode too.
  function overridable(obj, name) {
    var desc = getOwnPropertyDescriptor(obj, name);
    if (!desc || !('value' in desc) || !desc.configurable) {
      return;
    }
    var value = desc.value;
    defineProperty(obj, name, {
      get: function () { return value; },
      set: function (v) {
        if (this === obj) {
          throw new TypeError_("Cannot assign to read only property '" + String(name) + "' of a built-in prototype");
        }
        if (hasOwn.call(this, name)) {
          this[name] = v;
          return;
        }
        defineProperty(this, name, { value: v, writable: true, enumerable: true, configurable: true });
      },
      enumerable: desc.enumerable,
      configurable: false
    });
  }

  ['constructor', 'toString', 'valueOf', 'toLocaleString'].forEach(function (n) {
    overridable(Object.prototype, n);
  });
  ['constructor', 'toString'].forEach(function (n) {
    overridable(Function.prototype, n);
  });
  var errors = [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError];
  for (var i = 0; i < roots.length; i++) {
    if (typeof roots[i] === 'function' && roots[i].prototype instanceof Error) {
      errors.push(roots[i]);
    }
  }
  errors.forEach(function (E) {
    ['constructor', 'name', 'message', 'toString'].forEach(function (n) {
      overridable(E.prototype, n);
    });
  });

  if (maxString > 0) {
    var proto = String.prototype;
    var repeat = proto.repeat, padStart = proto.padStart, padEnd = proto.padEnd;
    var tooLong = function (n) {
      if (n > maxString) {
        throw new RangeError('Invalid string length: more than ' + maxString + ' characters');
      }
    };
    var bounded = {
      repeat(count) {
        tooLong(String(this).length * Math.floor(Number(count)));
        return repeat.call(this, count);
      },
      padStart(maxLength) {
        tooLong(Number(maxLength));
        return padStart.call(this, maxLength, arguments[1]);
      },
      padEnd(maxLength) {
        tooLong(Number(maxLength));
        return padEnd.call(this, maxLength, arguments[1]);
      }
    };
    ['repeat', 'padStart', 'padEnd'].forEach(function (n) {
      defineProperty(proto, n, { value: bounded[n], writable: true, enumerable: false, configurable: true });
    });
  }

  // The intrinsics that no global names.
  var hidden = [
    getPrototypeOf(function* () {}),
    getPrototypeOf(async function () {}),
    getPrototypeOf([][Symbol.iterator]()),
    getPrototypeOf(new Map().entries()),
    getPrototypeOf(new Set().values()),
    getPrototypeOf(''[Symbol.iterator]()),
    getPrototypeOf('a'.matchAll(/a/g)),
    getPrototypeOf(Uint8Array),
    getOwnPropertyDescriptor(function () { return arguments; }(), 'callee').get
  ];

  // harden freezes everything reachable from its roots through
  // prototypes and property values (accessors included), except the
  // global object.
  var seen = new Set([global]);
  function harden(roots) {
    var stack = roots.slice();
    while (stack.length > 0) {
      var o = stack.pop();
      if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) {
        continue;
      }
      seen.add(o);
      freeze(o);
      stack.push(getPrototypeOf(o));
      var keys = ownKeys(o);
      var fn = typeof o === 'function';
      for (var k = 0; k < keys.length; k++) {
        // A function's name and length are primitives: no descriptor
        // needed (they are most of the properties walked).
        if (fn && (keys[k] === 'name' || keys[k] === 'length')) {
          continue;
        }
        var d = getOwnPropertyDescriptor(o, keys[k]);
        if ('value' in d) {
          stack.push(d.value);
        } else {
          stack.push(d.get, d.set);
        }
      }
    }
  }
  harden(roots.concat(hidden));

  // The standard globals and stepup's cannot be replaced or deleted.
  var names = ownKeys(global);
  for (var j = 0; j < names.length; j++) {
    var gd = getOwnPropertyDescriptor(global, names[j]);
    if ('value' in gd && (gd.configurable || gd.writable)) {
      defineProperty(global, names[j], { writable: false, configurable: false });
    }
  }
  return harden;
})
