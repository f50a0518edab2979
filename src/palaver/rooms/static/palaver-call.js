// palaver-call.js: the part of Daily's call object that Tavus web apps use, over a Palaver room's WebSocket.
//
// A Tavus app joins `conversation_url` with daily-js and talks to the replica with
// Interactions Protocol app messages. Palaver's room carries the same messages over
// `<conversation_url>/ws`, so this file gives the app the same calls and events
// (createCallObject, join, leave, sendAppMessage, on('app-message'), participants(),
// ...) on top of that socket: swap the import, keep the code. Text only: there is
// no audio or video. Reference and example: docs/rooms-javascript.md.
//
// Load it as a classic script (it sets `window.PalaverCall`, and `window.Daily` when
// no daily-js is loaded), or as a module through `palaver-call.mjs`.
(function () {
  'use strict';

  const root = typeof globalThis !== 'undefined' ? globalThis : window;
  // The replica is a participant like in a Tavus call: its messages come `fromId: 'replica'`, and its
  // `user_id` contains "tavus-replica", which is how Tavus's own UI components recognise it.
  const REPLICA = 'replica';
  // Why the room refused or closed the socket (api/room_socket.py), as Daily's fatal error types.
  const CLOSE_TYPES = { 4401: 'not-allowed', 4404: 'no-room', 4409: 'meeting-full', 4410: 'exp-room' };
  const NO_MEDIA = () => ({
    audio: { state: 'off', subscribed: false, off: { byUser: false } },
    video: { state: 'off', subscribed: false, off: { byUser: false } },
  });
  let made = 0;

  /** `http(s)://host/rooms/<id>` (the conversation_url) -> `ws(s)://host/rooms/<id>/ws?name=…&token=…`. */
  function socketUrl(url, userName, token) {
    const base = root.location ? root.location.href : undefined;
    const target = new URL(url, base);
    const given = token || target.searchParams.get('t') || target.searchParams.get('token');
    if (target.protocol === 'https:') target.protocol = 'wss:';
    else if (target.protocol === 'http:') target.protocol = 'ws:';
    else if (target.protocol !== 'ws:' && target.protocol !== 'wss:') {
      throw new Error(`not a conversation_url: ${url}`);
    }
    target.pathname = `${target.pathname.replace(/\/+$/, '').replace(/\/ws$/, '')}/ws`;
    target.search = '';
    target.hash = '';
    target.searchParams.set('name', userName);
    if (given) target.searchParams.set('token', given);
    return target.toString();
  }

  function participant(info, local) {
    return {
      session_id: info.participant_id,
      user_id: info.participant_id,
      user_name: info.user_name,
      local,
      owner: false,
      joined_at: typeof info.joined_at === 'number' ? new Date(info.joined_at * 1000) : new Date(),
      tracks: NO_MEDIA(),
    };
  }

  function fatal(type, msg, details) {
    const error = new Error(msg);
    error.type = type;
    if (details) error.details = details;
    return error;
  }

  class PalaverCallObject {
    constructor(options = {}) {
      this._options = { ...options };
      this.callClientId = `palaver-${Date.now()}-${++made}`;
      this._handlers = new Map(); // event name -> [handler, once][]
      this._state = 'new';
      this._socket = null;
      this._local = null;
      this._remote = new Map(); // session_id -> participant
      this._pendingJoin = null;
      this._lastError = null;
      this._ended = null;
      this._leaving = false;
      this._destroyed = false;
    }

    // -- events (Daily's EventEmitter subset: on, once, off; each returns this) --------

    on(event, handler) {
      if (!this._handlers.has(event)) this._handlers.set(event, []);
      this._handlers.get(event).push([handler, false]);
      return this;
    }

    once(event, handler) {
      if (!this._handlers.has(event)) this._handlers.set(event, []);
      this._handlers.get(event).push([handler, true]);
      return this;
    }

    off(event, handler) {
      const list = this._handlers.get(event);
      if (list) this._handlers.set(event, list.filter(([h]) => h !== handler));
      return this;
    }

    _emit(action, fields = {}) {
      const event = { action, callClientId: this.callClientId, ...fields };
      const list = this._handlers.get(action) || [];
      this._handlers.set(action, list.filter(([, once]) => !once));
      for (const [handler] of list) {
        try { handler(event); } catch (error) { setTimeout(() => { throw error; }); } // like a DOM event
      }
    }

    // -- the call --------------------------------------------------------------------

    meetingState() { return this._state; }

    isDestroyed() { return this._destroyed; }

    /** `{local: {...}, <session_id>: {...}}`: Daily's shape; the replica is `participants().replica`. */
    participants() {
      const all = {};
      if (this._local) all.local = { ...this._local };
      for (const [id, p] of this._remote) all[id] = { ...p };
      return all;
    }

    /**
     * Join the room at `url` (the conversation_url). Resolves with participants() once the room
     * welcomed us; rejects with an Error whose message is the room's reason (and `type` Daily's).
     */
    join(properties = {}) {
      if (this._destroyed) return Promise.reject(new Error('this call object was destroyed'));
      if (this._state === 'joining-meeting' || this._state === 'joined-meeting') {
        return Promise.reject(new Error('already joined (or joining) a meeting'));
      }
      const options = { ...this._options, ...properties };
      if (!options.url) return Promise.reject(new Error('join() needs a url: the conversation_url'));
      let url;
      try {
        url = socketUrl(options.url, options.userName || 'Guest', options.token);
      } catch (error) {
        return Promise.reject(error);
      }
      this._options = options;
      this._lastError = null;
      this._ended = null;
      this._leaving = false;
      this._remote.clear();
      this._setState('joining-meeting');
      this._emit('joining-meeting');
      return new Promise((resolve, reject) => {
        this._pendingJoin = { resolve, reject };
        const socket = new WebSocket(url);
        this._socket = socket;
        socket.onmessage = (event) => {
          let message;
          try { message = JSON.parse(event.data); } catch (_) { return; }
          if (message && typeof message === 'object' && this._socket === socket) this._receive(message);
        };
        socket.onclose = (event) => {
          if (this._socket === socket) this._closed(event.code, event.reason);
        };
      });
    }

    /** Leave the call; resolves once the socket is closed. */
    leave() {
      const socket = this._socket;
      if (!socket) {
        if (this._state === 'joined-meeting' || this._state === 'joining-meeting') this._setState('left-meeting');
        return Promise.resolve();
      }
      this._leaving = true;
      return new Promise((resolve) => {
        const done = () => { socket.removeEventListener('close', done); resolve(); };
        socket.addEventListener('close', done);
        socket.close(1000, 'left');
      });
    }

    /** Leave, drop every handler; the object cannot join again. */
    async destroy() {
      if (this._destroyed) return;
      await this.leave();
      this._destroyed = true;
      this._emit('call-instance-destroyed');
      this._handlers.clear();
    }

    /**
     * Send `data` to the room. An Interactions Protocol message (`message_type: "conversation"`)
     * goes as it is: the replica acts on it, and the other participants get it as an app-message.
     * Anything else is app data for the other participants. `to` is '*' (everyone else), a
     * session_id or a list of them; the room relays every message to every participant and the
     * receiving call objects drop what is not addressed to them, so it is not private.
     */
    sendAppMessage(data, to = '*') {
      if (this._state !== 'joined-meeting' || !this._socket) throw new Error('sendAppMessage() needs a joined meeting');
      let message;
      if (data && typeof data === 'object' && data.message_type === 'conversation') {
        message = data;
      } else {
        const properties = { data };
        if (to !== '*') properties.to = Array.isArray(to) ? to.slice() : [to];
        message = { message_type: 'room', event_type: 'room.app_message', properties };
      }
      this._socket.send(JSON.stringify(message));
      return this;
    }

    // -- what the room says --------------------------------------------------------------

    _setState(state) { this._state = state; }

    _receive(message) {
      const p = message.properties || {};
      const type = message.event_type;
      if (message.message_type === 'room') {
        if (type === 'room.joined') this._welcomed(p);
        else if (type === 'room.participant_joined') this._joined(p.participant);
        else if (type === 'room.participant_left') this._left(p.participant);
        else if (type === 'room.app_message') this._relayed(p.from, p.data);
        else if (type === 'room.error') this._roomError(p);
        else if (type === 'room.ended') this._ended = p;
        return;
      }
      // The replica's messages (conversation.*, system.*), as Tavus sends them over Daily.
      if (type === 'system.replica_joined' && !this._remote.has(REPLICA)) {
        const replicaId = p.replica_id || '';
        const replica = {
          session_id: REPLICA, user_id: `tavus-replica-${replicaId}`, user_name: p.replica_name || replicaId,
          local: false, owner: false, joined_at: new Date(), tracks: NO_MEDIA(),
        };
        this._remote.set(REPLICA, replica);
        this._emit('participant-joined', { participant: { ...replica } });
      }
      this._emit('app-message', { data: message, fromId: REPLICA });
    }

    _welcomed(p) {
      this._local = participant(p.participant, true);
      this._setState('joined-meeting');
      const participants = { local: { ...this._local } };
      this._emit('joined-meeting', { participants });
      if (this._pendingJoin) {
        this._pendingJoin.resolve(this.participants());
        this._pendingJoin = null;
      }
      // As daily-js does: the others already here arrive as participant-joined after joined-meeting.
      for (const info of p.participants || []) this._joined(info);
    }

    _joined(info) {
      if (!info || !this._local || info.participant_id === this._local.session_id) return;
      if (this._remote.has(info.participant_id)) return;
      const remote = participant(info, false);
      this._remote.set(remote.session_id, remote);
      this._emit('participant-joined', { participant: { ...remote } });
    }

    _left(info) {
      const remote = info && this._remote.get(info.participant_id);
      if (!remote) return;
      this._remote.delete(info.participant_id);
      this._emit('participant-left', { participant: remote });
    }

    _relayed(fromId, data) {
      // Data sent with sendAppMessage() arrives wrapped; an Interactions Protocol message another
      // participant sent to the replica arrives as it was sent.
      if (data && data.message_type === 'room' && data.event_type === 'room.app_message') {
        const inner = data.properties || {};
        if (Array.isArray(inner.to) && this._local && !inner.to.includes(this._local.session_id)) return;
        this._emit('app-message', { data: inner.data, fromId });
      } else {
        this._emit('app-message', { data, fromId });
      }
    }

    _roomError(p) {
      this._lastError = p;
      // A refusal (with a code) is followed by the socket closing: that is the fatal error.
      if (this._state === 'joined-meeting' && p.code === undefined) {
        this._emit('nonfatal-error', { type: 'palaver-room-error', errorMsg: p.message || 'room error', details: p });
      }
    }

    _closed(code, reason) {
      const wasJoined = this._state === 'joined-meeting';
      this._socket = null;
      this._remote.clear();
      const pending = this._pendingJoin;
      this._pendingJoin = null;
      if (this._leaving) {
        this._setState('left-meeting');
        if (wasJoined) this._emit('left-meeting');
        if (pending) pending.reject(new Error('left the meeting before it was joined'));
        return;
      }
      let error;
      if (code === 4410 || (this._ended && this._ended.status === 'ended')) {
        const ended = this._ended || {};
        const msg = ended.message || (this._lastError && this._lastError.message) || 'This conversation has ended.';
        // In a call the end ejects us (Daily: 'ejected'); refused at the door, the room has expired.
        error = fatal(wasJoined ? 'ejected' : 'exp-room', msg, { code, shutdown_reason: ended.shutdown_reason });
      } else if (CLOSE_TYPES[code]) {
        const msg = (this._lastError && this._lastError.message) || reason || 'the room refused to let us in';
        error = fatal(CLOSE_TYPES[code], msg, { code });
      } else {
        const why = (this._ended && this._ended.message) || (this._lastError && this._lastError.message) || reason;
        error = fatal('connection-error', why || `the connection to the room closed (code ${code})`, { code });
      }
      this._setState('error');
      this._emit('error', { errorMsg: error.message, error: { type: error.type, msg: error.message, details: error.details } });
      if (wasJoined) this._emit('left-meeting');
      if (pending) pending.reject(error);
    }
  }

  const PalaverCall = {
    /** Daily.createCallObject(options?): options may hold url, token and userName for join(). */
    createCallObject(options) { return new PalaverCallObject(options); },
    PalaverCallObject,
    socketUrl,
  };
  root.PalaverCall = PalaverCall;
  if (root.Daily === undefined) root.Daily = PalaverCall; // so `Daily.createCallObject()` works unchanged
  if (typeof module === 'object' && module && module.exports) module.exports = PalaverCall;
})();
