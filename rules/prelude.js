// Prelude run once per runtime. It receives Go natives and returns the
// constructors that become globals or module exports. It declares nothing
// global itself.
(function (natives) {
  'use strict';

  var MAX_BUFFER = 16 * 1024 * 1024;

  function stackFrom(tmp, header) {
    if (typeof tmp.stack !== 'string') {
      return header;
    }
    var nl = tmp.stack.indexOf('\n');
    return nl < 0 ? header : header + tmp.stack.slice(nl);
  }

  // makeError defines an Error subclass that also works without `new`.
  function makeError(name, parent, init) {
    var Ctor = function (message) {
      if (!(this instanceof Ctor)) {
        var o = Object.create(Ctor.prototype);
        Ctor.apply(o, arguments);
        return o;
      }
      var msg = message === undefined ? '' : String(message);
      var tmp = Error.call(this, msg);
      Object.defineProperty(this, 'message', { value: msg, writable: true, configurable: true, enumerable: false });
      Object.defineProperty(this, 'name', { value: name, writable: true, configurable: true, enumerable: false });
      Object.defineProperty(this, 'stack', { value: stackFrom(tmp, name + ': ' + msg), writable: true, configurable: true, enumerable: false });
      if (init) {
        init.apply(this, arguments);
      }
    };
    Object.defineProperty(Ctor, 'name', { value: name, configurable: true });
    Ctor.prototype = Object.create(parent.prototype, {
      constructor: { value: Ctor, writable: true, configurable: true },
      name: { value: name, writable: true, configurable: true }
    });
    return Ctor;
  }

  var UnauthorizedError = makeError('UnauthorizedError', Error);

  var JsonWebTokenError = makeError('JsonWebTokenError', Error, function (message, error) {
    if (error) {
      this.inner = error;
    }
  });
  var TokenExpiredError = makeError('TokenExpiredError', JsonWebTokenError, function (message, expiredAt) {
    this.expiredAt = expiredAt;
  });
  var NotBeforeError = makeError('NotBeforeError', JsonWebTokenError, function (message, date) {
    this.date = date;
  });

  function checkSize(size) {
    if (typeof size !== 'number' || size !== size || size < 0) {
      throw new TypeError('The "size" argument must be of type number and not negative. Received ' + String(size));
    }
    if (size > MAX_BUFFER) {
      throw new RangeError('The value of "size" is out of range. It must be <= ' + MAX_BUFFER + '. Received ' + size);
    }
    return Math.floor(size);
  }

  class Buffer extends Uint8Array {
    static from(value, encodingOrOffset, length) {
      if (typeof value === 'string') {
        return new Buffer(natives.decode(value, encodingOrOffset));
      }
      if (value instanceof ArrayBuffer) {
        var off = encodingOrOffset === undefined ? 0 : encodingOrOffset >>> 0;
        var len = length === undefined ? value.byteLength - off : length >>> 0;
        return new Buffer(value, off, len);
      }
      if (value === null || value === undefined) {
        throw new TypeError('The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object. Received ' + value);
      }
      if (typeof value === 'object') {
        if (value.type === 'Buffer' && Array.isArray(value.data)) {
          return Buffer.from(value.data);
        }
        if (ArrayBuffer.isView(value) || typeof value.length === 'number') {
          var b = new Buffer(checkSize(value.length >>> 0));
          for (var i = 0; i < b.length; i++) {
            b[i] = value[i];
          }
          return b;
        }
        if (typeof value.valueOf === 'function') {
          var prim = value.valueOf();
          if (prim !== value && prim !== null && prim !== undefined) {
            return Buffer.from(prim, encodingOrOffset, length);
          }
        }
      }
      throw new TypeError('The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object.');
    }

    static alloc(size, fill, encoding) {
      var b = new Buffer(checkSize(size));
      if (fill !== undefined && fill !== 0) {
        b.fill(fill, 0, b.length, encoding);
      }
      return b;
    }

    static allocUnsafe(size) {
      return new Buffer(checkSize(size));
    }

    static isBuffer(obj) {
      return obj instanceof Buffer;
    }

    static isEncoding(encoding) {
      return natives.isEncoding(encoding);
    }

    static byteLength(value, encoding) {
      if (typeof value === 'string') {
        return natives.byteLength(value, encoding);
      }
      if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
        return value.byteLength;
      }
      throw new TypeError('The "string" argument must be of type string or an instance of Buffer or ArrayBuffer.');
    }

    static concat(list, totalLength) {
      if (!Array.isArray(list)) {
        throw new TypeError('The "list" argument must be an instance of Array.');
      }
      if (totalLength === undefined) {
        totalLength = 0;
        for (var i = 0; i < list.length; i++) {
          totalLength += list[i].length;
        }
      }
      var out = new Buffer(checkSize(totalLength));
      var pos = 0;
      for (var j = 0; j < list.length && pos < out.length; j++) {
        var item = list[j];
        if (!(item instanceof Uint8Array)) {
          throw new TypeError('The "list[' + j + ']" argument must be an instance of Buffer or Uint8Array.');
        }
        var n = Math.min(item.length, out.length - pos);
        out.set(item.subarray(0, n), pos);
        pos += n;
      }
      return out;
    }

    static compare(a, b) {
      return a.compare(b);
    }

    toString(encoding, start, end) {
      return natives.encode(this, encoding, start, end);
    }

    toJSON() {
      return { type: 'Buffer', data: Array.prototype.slice.call(this) };
    }

    equals(other) {
      if (!(other instanceof Uint8Array)) {
        throw new TypeError('The "otherBuffer" argument must be an instance of Buffer or Uint8Array.');
      }
      return this.compare(other) === 0;
    }

    compare(other) {
      if (!(other instanceof Uint8Array)) {
        throw new TypeError('The "target" argument must be an instance of Buffer or Uint8Array.');
      }
      var n = Math.min(this.length, other.length);
      for (var i = 0; i < n; i++) {
        if (this[i] !== other[i]) {
          return this[i] < other[i] ? -1 : 1;
        }
      }
      return this.length === other.length ? 0 : (this.length < other.length ? -1 : 1);
    }

    slice(start, end) {
      return this.subarray(start, end);
    }

    fill(value, offset, end, encoding) {
      if (typeof offset === 'string') {
        encoding = offset;
        offset = 0;
        end = this.length;
      }
      if (typeof value === 'string') {
        var bytes = natives.decode(value, encoding);
        var src = new Uint8Array(bytes);
        var from = offset === undefined ? 0 : offset;
        var to = end === undefined ? this.length : end;
        if (src.length === 0) {
          return Uint8Array.prototype.fill.call(this, 0, from, to);
        }
        for (var i = from, k = 0; i < to; i++, k = (k + 1) % src.length) {
          this[i] = src[k];
        }
        return this;
      }
      return Uint8Array.prototype.fill.call(this, value, offset, end);
    }

    write(string, offset, length, encoding) {
      if (typeof offset === 'string') {
        encoding = offset;
        offset = 0;
        length = undefined;
      } else if (typeof length === 'string') {
        encoding = length;
        length = undefined;
      }
      offset = offset === undefined ? 0 : offset >>> 0;
      var src = new Uint8Array(natives.decode(String(string), encoding));
      var n = Math.min(src.length, this.length - offset, length === undefined ? Infinity : length >>> 0);
      this.set(src.subarray(0, n), offset);
      return n;
    }
  }

  return {
    UnauthorizedError: UnauthorizedError,
    JsonWebTokenError: JsonWebTokenError,
    TokenExpiredError: TokenExpiredError,
    NotBeforeError: NotBeforeError,
    Buffer: Buffer
  };
})
