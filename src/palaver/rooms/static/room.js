// The room page at conversation_url: joins <conversation_url>/ws and shows the call as it happens.
//
// The server renders the shell (api/rooms.py) with what the record says; this
// script does the live part: the call state, the participants, the transcript
// with the replica's words streaming in, the text box and the Leave button.
// Every text that came from someone else is set with textContent, never parsed
// as HTML. The messages are the Interactions Protocol plus the room's own
// (`message_type: "room"`), see src/palaver/domain/interactions.py.
'use strict';

(() => {
  const root = document.getElementById('room');
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'), detail: $('status-detail'), avatar: $('avatar'),
    join: $('join'), joinName: $('join-name'), joinButton: $('join-button'),
    transcript: $('transcript'), participants: $('participants'), error: $('error'),
    composer: $('composer'), message: $('message'), send: $('send'), leave: $('leave'),
  };
  const conversationId = root.dataset.conversationId;
  const replicaName = root.dataset.replicaName || 'Replica';
  const params = new URLSearchParams(location.search);
  const token = params.get('t') || params.get('token'); // Tavus documents `?t=TOKEN`
  const ENDED = 'This conversation has ended.';
  const REASONS = { // the same phrases as the server-rendered page (api/rooms.py)
    end_conversation_endpoint_hit: 'It was ended through the API.',
    daily_room_has_been_deleted: 'It was deleted.',
    deleted: 'It was deleted.',
    'max_call_duration reached': 'It reached its maximum duration.',
    'participant_left_timeout reached': 'Everyone had left.',
    'participant_absent_timeout reached': 'Nobody joined in time.',
  };
  const REFUSED = {
    4401: ['Not allowed', 'You are not allowed to join this meeting.'],
    4404: ['Not found', 'There is no such conversation.'],
    4409: ['Full', 'This meeting is full.'],
  };
  const NAME_KEY = 'palaver.userName';
  const MAX_FRAME = 64 * 1024; // bytes, as the room's socket allows (domain/interactions.py)
  const WATCH_MS = 500; // how often a page without a socket asks whether the conversation ended

  let socket = null;
  let watcher = null;
  let state = root.dataset.status === 'active' ? 'idle' : 'ended';
  let leaving = false;
  let lastError = null; // a room.error that came just before a refusal closed the socket
  let me = null;
  let replicaHere = false;
  const people = new Map(); // participant_id -> {participant_id, user_name, joined_at}
  const bubbles = new Map(); // inference_id -> the replica's line being streamed
  // Texts sent with conversation.respond, oldest first, and who sent them: the user's
  // conversation.utterance does not say who spoke, the relayed respond does.
  const said = [];

  // -- showing ------------------------------------------------------------------------

  function setStatus(next, label, detail = '') {
    state = next;
    root.dataset.state = next;
    ui.status.className = `status ${next}`;
    ui.status.textContent = label;
    ui.detail.textContent = detail;
    const inCall = next === 'in-call';
    ui.message.disabled = ui.send.disabled = ui.leave.disabled = !inCall;
    if (!inCall) ui.avatar.classList.remove('speaking');
  }

  function showError(text) {
    ui.error.textContent = text;
    ui.error.hidden = false;
  }

  function clearError() {
    ui.error.hidden = true;
    ui.error.textContent = '';
  }

  function addLine(kind, who, text) {
    const line = document.createElement('li');
    line.className = `line ${kind}`;
    const label = document.createElement('span');
    label.className = 'who';
    label.textContent = who;
    const body = document.createElement('p');
    body.className = 'text';
    body.textContent = text;
    line.append(label, body);
    ui.transcript.append(line);
    line.scrollIntoView({ block: 'end' });
    return line;
  }

  function setLineText(line, text) {
    line.querySelector('.text').textContent = text;
    line.scrollIntoView({ block: 'end' });
  }

  function renderParticipants() {
    const items = [];
    if (replicaHere) items.push([replicaName, 'replica']);
    if (me) items.push([me.user_name, 'you']);
    for (const person of people.values()) items.push([person.user_name, '']);
    ui.participants.replaceChildren(...items.map(([name, tag]) => {
      const item = document.createElement('li');
      item.textContent = name;
      if (tag) {
        const small = document.createElement('span');
        small.className = 'tag';
        small.textContent = tag;
        item.append(' ', small);
      }
      return item;
    }));
  }

  function showJoin(buttonLabel) {
    ui.joinButton.textContent = buttonLabel;
    ui.join.hidden = false;
    ui.joinName.focus();
  }

  // A joined page hears the end on its socket (room.ended); one at the name prompt, or
  // that left, has none, so it asks the server until it joins or the conversation ends.
  function watch() {
    if (watcher) return;
    watcher = setInterval(async () => {
      if (socket || state === 'ended') { unwatch(); return; }
      try {
        const response = await fetch(`/rooms/${encodeURIComponent(conversationId)}/state`, { cache: 'no-store' });
        if (response.status === 404) ended('deleted');
        else if (response.ok) {
          const record = await response.json();
          if (record.status !== 'active') ended(record.shutdown_reason);
        }
      } catch (_) { /* offline for a moment: ask again next time */ }
    }, WATCH_MS);
  }

  function unwatch() {
    clearInterval(watcher);
    watcher = null;
  }

  function ended(reason) {
    if (state === 'ended') return;
    unwatch();
    setStatus('ended', 'Ended', [ENDED, REASONS[reason] || ''].join(' ').trim());
    ui.join.hidden = true;
    for (const line of bubbles.values()) line.classList.remove('streaming');
    bubbles.clear();
  }

  // -- the socket -----------------------------------------------------------------------

  function join(name) {
    try { localStorage.setItem(NAME_KEY, name); } catch (_) { /* storage may be off */ }
    ui.joinName.value = name; // so Rejoin is one click
    ui.join.hidden = true;
    unwatch();
    clearError();
    leaving = false;
    lastError = null;
    setStatus('connecting', 'Connecting…');
    const query = new URLSearchParams({ name });
    if (token) query.set('token', token);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${location.host}/rooms/${encodeURIComponent(conversationId)}/ws?${query}`;
    const ws = new WebSocket(url);
    socket = ws;
    ws.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (_) { return; }
      if (message && typeof message === 'object') handle(message);
    };
    ws.onclose = (event) => closed(event.code);
  }

  function closed(code) {
    socket = null;
    me = null;
    replicaHere = false;
    people.clear();
    renderParticipants();
    if (state === 'ended') return;
    if (code === 4410) { ended(null); return; }
    if (leaving) {
      setStatus('left', 'Left', 'You left the call.');
      showJoin('Rejoin');
    } else if (REFUSED[code]) {
      const [label, text] = REFUSED[code];
      clearError();
      setStatus('refused', label, (lastError && lastError.message) || text);
      if (code === 4409) showJoin('Try again');
      if (code === 4404) return; // nothing to watch
    } else {
      const why = lastError && lastError.message ? ` ${lastError.message}` : '';
      setStatus('disconnected', 'Disconnected', `The connection was lost (code ${code}).${why}`);
      showJoin('Rejoin');
    }
    watch();
  }

  function handle(message) {
    const p = message.properties || {};
    switch (message.event_type) {
      case 'room.joined':
        me = p.participant;
        for (const person of p.participants || []) {
          if (person.participant_id !== me.participant_id) people.set(person.participant_id, person);
        }
        ui.transcript.replaceChildren();
        bubbles.clear();
        for (const turn of p.transcript || []) {
          if (turn.role === 'assistant') addLine('replica', replicaName, turn.content);
          else addLine('user', 'Participant', turn.content);
        }
        renderParticipants();
        setStatus('in-call', 'In call');
        ui.message.focus();
        break;
      case 'room.participant_joined':
        if (p.participant && (!me || p.participant.participant_id !== me.participant_id)) {
          people.set(p.participant.participant_id, p.participant);
          renderParticipants();
        }
        break;
      case 'room.participant_left':
        if (p.participant) {
          people.delete(p.participant.participant_id);
          renderParticipants();
        }
        break;
      case 'room.app_message': {
        const data = p.data || {};
        if (data.event_type === 'conversation.respond' && data.properties && typeof data.properties.text === 'string') {
          const person = people.get(p.from);
          remember(person ? person.user_name : 'Participant', data.properties.text);
        }
        break;
      }
      case 'room.error':
        lastError = p;
        if (state === 'in-call') showError(p.message || 'Something went wrong.');
        break;
      case 'room.ended':
        if (p.status === 'ended') ended(p.shutdown_reason);
        else lastError = p; // the server is stopping: the socket closes next
        break;
      case 'system.replica_joined':
        replicaHere = true;
        renderParticipants();
        break;
      case 'conversation.replica.started_speaking':
        ui.avatar.classList.add('speaking');
        break;
      case 'conversation.replica.stopped_speaking':
        ui.avatar.classList.remove('speaking');
        break;
      case 'conversation.utterance.streaming':
        if (p.role === 'replica') replicaSays(message.inference_id, p.speech, !p.final);
        break;
      case 'conversation.utterance':
        if (p.role === 'replica') {
          const line = replicaSays(message.inference_id, p.speech, false);
          if (line && p.interrupted) line.classList.add('interrupted');
          bubbles.delete(message.inference_id);
        } else if (p.role === 'user') {
          userSaid(p.speech || '');
        }
        break;
      case 'conversation.tool_call':
        addLine('system', 'Tool call', `${p.name}(${p.arguments || ''})`);
        bubbles.delete(message.inference_id); // what the replica says after the tool is a new line
        break;
      default:
        break; // the rest of the protocol changes nothing on this page
    }
  }

  // One line per inference_id: streaming messages carry the text so far, so each replaces the last.
  function replicaSays(inferenceId, speech, streaming) {
    let line = bubbles.get(inferenceId);
    if (!line) {
      if (!speech) return null;
      line = addLine('replica', replicaName, speech);
      bubbles.set(inferenceId, line);
    } else {
      setLineText(line, speech || '');
    }
    line.classList.toggle('streaming', streaming);
    return line;
  }

  function userSaid(text) {
    const index = said.findIndex((entry) => entry.text === text);
    const who = index >= 0 ? said.splice(index, 1)[0].who : 'Participant';
    addLine('user', who, text);
  }

  function send(text) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    const frame = JSON.stringify({
      message_type: 'conversation',
      event_type: 'conversation.respond',
      conversation_id: conversationId,
      properties: { text },
    });
    // The room closes the socket on a frame over 64 KiB; say so here instead of dropping the call.
    if (new Blob([frame]).size > MAX_FRAME) { showError('That message is too long to send.'); return false; }
    socket.send(frame);
    remember(me ? `${me.user_name} (you)` : 'You', text);
    return true;
  }

  function remember(who, text) {
    said.push({ who, text });
    if (said.length > 50) said.shift(); // a respond the room refused never comes back as an utterance
  }

  // -- wiring ---------------------------------------------------------------------------

  ui.join.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = ui.joinName.value.trim();
    if (name) join(name);
  });
  ui.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = ui.message.value.trim();
    if (!text) return;
    clearError();
    if (send(text)) ui.message.value = '';
  });
  ui.message.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.send.click(); // requestSubmit() is younger than the rest of this page needs
    }
  });
  ui.leave.addEventListener('click', () => {
    if (!socket) return;
    leaving = true;
    socket.close(1000, 'left');
  });

  if (state === 'idle') {
    const name = (params.get('name') || '').trim();
    if (name) {
      join(name.slice(0, 100));
    } else {
      try { ui.joinName.value = localStorage.getItem(NAME_KEY) || ''; } catch (_) { /* storage may be off */ }
      showJoin('Join');
      watch();
    }
  }
})();
