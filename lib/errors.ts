// One factory for Node-shaped errors: system errors (code, errno, syscall, address, port)
// and the ERR_* argument errors with the messages Node uses.
import { constants as osConstants } from 'os';
import { inspect } from 'util';

const errnoByName = osConstants.errno as Record<string, number>;

export interface SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
  address?: string;
  port?: number;
}

/** errno name for a positive or negative errno number ('ECONNREFUSED' for 111 or -111) */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  for (const [name, value] of Object.entries(errnoByName)) if (value === n) return name;
  return `Unknown system error ${-n}`;
}

/**
 * A system error shaped like libuv's through Node: message `${syscall} ${code} ${address}:${port}`,
 * errno negative as Node reports it.
 */
export function systemError(code: string | number, syscall: string, address?: string, port?: number, extra?: string): SystemError {
  const name = typeof code === 'number' ? errnoName(code) : code;
  const errno = typeof code === 'number' ? -Math.abs(code) : -(errnoByName[name] ?? 0);
  let details = '';
  if (address !== undefined && address !== '') {
    details = port !== undefined && port > 0 ? ` ${address}:${port}` : ` ${address}`;
  }
  if (extra) details += ` - ${extra}`;
  const err = new Error(`${syscall} ${name}${details}`) as SystemError;
  err.errno = errno;
  err.code = name;
  err.syscall = syscall;
  if (address !== undefined && address !== '') err.address = address;
  if (port !== undefined && port > 0) err.port = port;
  return err;
}

export interface NodeError extends Error {
  code: string;
}

function nodeError(Base: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, code: string, message: string): NodeError {
  const err = new Base(message) as NodeError;
  err.code = code;
  // Node's errors print as `TypeError [CODE]: message`
  Object.defineProperty(err, 'name', { value: Base.name, enumerable: false, writable: true, configurable: true });
  Object.defineProperty(err, 'toString', {
    value() { return `${Base.name} [${code}]: ${message}`; },
    enumerable: false, writable: true, configurable: true,
  });
  return err;
}

/** How Node describes the value it received, in ERR_INVALID_ARG_TYPE and ERR_OUT_OF_RANGE messages */
export function describeReceived(value: unknown): string {
  if (value == null) return ` Received ${value}`;
  if (typeof value === 'function') return ` Received function ${(value as Function).name}`;
  if (typeof value === 'object') {
    const ctor = (value as object).constructor;
    if (ctor && ctor.name) return ` Received an instance of ${ctor.name}`;
    return ` Received ${inspect(value, { depth: -1 })}`;
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return ` Received type ${typeof value} (${shown})`;
}

function listTypes(expected: string[]): string {
  const types: string[] = [];
  const instances: string[] = [];
  for (const e of expected) {
    if (/^[A-Z]/.test(e)) instances.push(e);
    else types.push(e);
  }
  const join = (a: string[]) => a.length <= 2 ? a.join(' or ') : `${a.slice(0, -1).join(', ')}, or ${a[a.length - 1]}`;
  let msg = '';
  if (types.length) msg += `of type ${join(types)}`;
  if (instances.length) msg += `${msg ? ' or ' : ''}an instance of ${join(instances)}`;
  return msg;
}

/** ERR_INVALID_ARG_TYPE: `The "name" argument must be of type string. Received ...` */
export function invalidArgType(name: string, expected: string | string[], actual: unknown): NodeError {
  const list = Array.isArray(expected) ? expected : [expected];
  const what = name.endsWith(' argument') ? name : (name.includes('.') ? `"${name}" property` : `"${name}" argument`);
  return nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The ${what} must be ${listTypes(list)}.${describeReceived(actual)}`);
}

/** ERR_INVALID_ARG_VALUE: `The argument 'name' is invalid. Received ...` */
export function invalidArgValue(name: string, value: unknown, reason = 'is invalid'): NodeError {
  const kind = name.includes('.') ? 'property' : 'argument';
  return nodeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The ${kind} '${name}' ${reason}. Received ${inspect(value)}`);
}

/** ERR_OUT_OF_RANGE */
export function outOfRange(name: string, range: string, value: unknown): NodeError {
  return nodeError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${inspect(value)}`);
}

/** ERR_SOCKET_BAD_PORT: `Port should be >= 0 and < 65536. Received type number (65536).` */
export function badPort(name: string, port: unknown, allowZero = true): NodeError {
  const op = allowZero ? '>=' : '>';
  return nodeError(RangeError, 'ERR_SOCKET_BAD_PORT', `${name} should be ${op} 0 and < 65536.${describeReceived(port)}.`);
}

/** ERR_INVALID_IP_ADDRESS */
export function invalidIpAddress(address: unknown): NodeError {
  return nodeError(TypeError, 'ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${address}`);
}

/** Any other ERR_* code with its message */
export function codedError(code: string, message: string, Base: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor = Error): NodeError {
  return nodeError(Base, code, message);
}

/** Node's port validation: integer-like number or numeric string in [0, 65535] (allowZero) */
export function validatePort(port: unknown, name = 'Port', allowZero = true): number {
  if ((typeof port !== 'number' && typeof port !== 'string') ||
      (typeof port === 'string' && port.trim().length === 0) ||
      +port !== (+port >>> 0) ||
      +port > 0xFFFF ||
      (port === 0 && !allowZero)) {
    throw badPort(name, port, allowZero);
  }
  return +port | 0;
}
