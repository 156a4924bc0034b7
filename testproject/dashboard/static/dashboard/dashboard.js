/* The dashboard's script. No framework, no build step, nothing from a CDN:
 * - one EventSource (/dashboard/stream/) brings a snapshot of every role each second;
 * - one WebSocket (/ws/notifications/replay/) is the pub/sub panel's live feed;
 * - small fetch() probes show what a real request gets from each role right now;
 * - the buttons POST with the CSRF token and show what came back.
 * Each panel's data-seq is the sampler reading it last rendered: it stops moving
 * when the panel stops updating (the browser tests watch it).
 */
(function () {
  "use strict";

  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var csrf = ($("input[name=csrfmiddlewaretoken]") || {}).value || "";
  // Staff buttons carry it: they must work while the sessions' Redis is down (actions.py).
  var staffToken = ($("#staff-token") || {}).value || "";
  // The "try it" endpoint's limit (its rate: the page says which, $DEMO_TRY_RATE may change it).
  var tryLimit = Number(($(".try[data-limit]") || { dataset: {} }).dataset.limit) || 5;
  var ROLES = ["cache", "sessions", "ratelimit", "pubsub", "locks"];
  var CHART_SECONDS = 300;
  var state = {
    frame: null,
    viewer: { authenticated: false, staff: false },
    charts: {},
    servers: {},          // label -> instance entry of the latest frame
    locks: [],            // [{name, ..., endsAt}] for the lease countdown
    retryUntil: 0,        // the try-it button's Retry-After countdown
    budget: [],           // [{at, r, refused}] of the try-it requests
    lastSeq: null,        // the pub/sub feed's last replay seq (survives a reload)
    replayed: 0,          // the layer's replayed counter in the latest frame
    lost: null,           // the latest "reconnected" marker, to add what replay brought back
    wasDown: {},          // role -> true while its Redis is out (to say "back")
    loggedOut: false
  };

  // -- small helpers --------------------------------------------------------
  function panel(role) { return $("#panel-" + role); }
  function k(role, key) { return $("[data-k='" + key + "']", panel(role)); }
  function setText(node, text) { if (node && node.textContent !== String(text)) { node.textContent = text; } }
  function num(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); }
  function pct(r) { return r === null || r === undefined ? "–" : Math.round(100 * r) + "%"; }
  function clock(ts) { return new Date(ts * 1000).toLocaleTimeString("en-GB"); }
  function ago(ts) {
    var s = Math.max(0, Math.round(Date.now() / 1000 - ts));
    return s < 60 ? s + " s ago" : Math.round(s / 60) + " min ago";
  }
  function bytes(n) {
    if (!n) { return "0 B"; }
    var units = ["B", "KB", "MB", "GB"], i = Math.min(3, Math.floor(Math.log(n) / Math.log(1024)));
    return (n / Math.pow(1024, i)).toFixed(i ? 1 : 0) + " " + units[i];
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") { node.textContent = attrs[name]; } else { node.setAttribute(name, attrs[name]); }
    });
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function fill(tbody, rows, nowrap) {  // rows: arrays of cells (strings or nodes)
    tbody.replaceChildren.apply(tbody, rows.map(function (cells) {
      return el("tr", {}, cells.map(function (c, i) {
        return el("td", (nowrap || []).indexOf(i) >= 0 ? { class: "nowrap" } : {}, [c]);
      }));
    }));
  }
  function post(url, data) {
    var body = new URLSearchParams(data || {});
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" }
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (json) { return { status: r.status, body: json }; });
    });
  }

  // -- charts: inline SVG polylines, newest on the right ----------------------
  function draw(node, points, opts) {
    opts = opts || {};
    var w = 300, h = Number(node.getAttribute("viewBox").split(" ")[3]);
    var now = opts.now || Date.now() / 1000;
    var x0 = opts.x0, x1 = opts.x1 !== undefined ? opts.x1 : now;
    if (x0 === undefined) {  // the last 5 minutes, or what there is of them (20 s at least)
      var span = opts.seconds || CHART_SECONDS;
      x0 = Math.max(now - span, points.length ? points[0][0] : now - 20);
      x0 = Math.min(x0, now - 20);
    }
    var series = opts.series || (points[0] ? points[0].length - 1 : 0);
    var max = opts.max || 0, min = opts.min === "auto" ? Infinity : 0;
    points.forEach(function (p) {
      for (var i = 1; i <= series; i++) { max = Math.max(max, p[i] || 0); if (min !== 0) { min = Math.min(min, p[i] || 0); } }
    });
    if (!isFinite(min)) { min = 0; }
    if (min !== 0) { min = Math.max(0, min - (max - min || max * 0.05)); }  // some room below
    max = max || 1;
    var X = function (t) { return ((t - x0) / (x1 - x0)) * w; };
    var Y = function (v) { return h - 2 - ((v - min) / (max - min || 1)) * (h - 6); };
    var parts = [];
    (opts.refs || []).forEach(function (ref) {
      if (ref.y !== undefined) { parts.push('<polyline class="ref" points="0,' + Y(ref.y) + " " + w + "," + Y(ref.y) + '"/>'); }
      if (ref.x !== undefined) { parts.push('<polyline class="ref" points="' + X(ref.x) + ",0 " + X(ref.x) + "," + h + '"/>'); }
    });
    for (var i = 1; i <= series; i++) {
      var cls = (opts.classes || [])[i - 1] || "s" + (i - 1);
      var pts = points.filter(function (p) { return p[0] >= x0; })
        .map(function (p) { return X(p[0]).toFixed(1) + "," + Y(p[i] || 0).toFixed(1); });
      if (pts.length) { parts.push('<polyline class="' + cls + '" points="' + pts.join(" ") + '"/>'); }
    }
    (opts.dots || []).forEach(function (d) {
      parts.push('<circle class="' + d.cls + '" cx="' + X(d.t).toFixed(1) + '" cy="' + Y(d.v).toFixed(1) + '" r="2.5"/>');
    });
    node.innerHTML = parts.join("");
    node.setAttribute("data-points", String(points.length));
    node.setAttribute("data-max", String(max));
  }

  function svg(name, height) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    node.setAttribute("class", "chart");
    node.setAttribute("viewBox", "0 0 300 " + (height || 60));
    node.setAttribute("preserveAspectRatio", "none");
    node.setAttribute("data-chart", name);
    return node;
  }

  // -- the feed ---------------------------------------------------------------
  var feedStatus = $("#feed-status");
  function setFeed(text, stateName) { setText(feedStatus, text); feedStatus.setAttribute("data-state", stateName); }

  function connectFeed() {
    var source = new EventSource("/dashboard/stream/");
    source.addEventListener("open", function () { setFeed("live", "live"); });
    source.addEventListener("frame", function (e) { onFrame(JSON.parse(e.data)); });
    source.addEventListener("logout", function (e) {
      source.close();
      onLoggedOut(JSON.parse(e.data));
      setTimeout(connectFeed, 1000);  // the feed goes on, now as an anonymous visitor
    });
    source.addEventListener("error", function () {
      // A 503 (the sessions Redis is down) closes an EventSource for good: retry ourselves.
      setFeed("reconnecting…", "down");
      if (source.readyState === EventSource.CLOSED) { setTimeout(connectFeed, 2000); }
    });
  }

  function onLoggedOut(data) {
    state.loggedOut = true;
    state.viewer = { authenticated: false, staff: false };
    banner("You were signed out: this session (" + (data.username || "you") +
      ") was ended from another device (“Log out everywhere”). Log in again to continue.", "logout");
  }

  function banner(text, kind) {
    var box = $("#banner");
    if (!text) { box.hidden = true; box.removeAttribute("data-kind"); return; }
    box.hidden = false;
    box.setAttribute("data-kind", kind || "");
    box.className = kind === "info" ? "info" : "";
    setText(box, text);
  }

  function onFrame(f) {
    state.frame = f;
    state.viewer = f.viewer;
    if (f.full) { state.charts = f.charts; } else {
      Object.keys(f.charts).forEach(function (name) {
        var series = state.charts[name] = state.charts[name] || [];
        f.charts[name].forEach(function (p) {
          if (!series.length || series[series.length - 1][0] < p[0]) { series.push(p); }
        });
        if (series.length > 300) { series.splice(0, series.length - 300); }
      });
    }
    (f.instances.data ? Object.keys(f.instances.data) : []).forEach(function (label) {
      state.servers[label] = f.instances.data[label];
    });
    ROLES.forEach(function (role) {
      var section = f[role];
      try {
        if (section.data) { RENDER[role](section.data, f); }
        mark(role, section, f);
      } catch (err) {
        console.error("panel " + role, err);  // its data-seq stops: the tests notice
      }
    });
    try { renderJobs(f.jobs); } catch (err) { console.error("jobs", err); }
    try { renderInstances(f); } catch (err) { console.error("instances", err); }
    try { renderFaults(f); } catch (err) { console.error("faults", err); }
  }

  // Fresh, waiting for Redis, or failing: the panel's state line and data-seq.
  function mark(role, section, f) {
    var node = panel(role), line = $(".state", node);
    var serverLabel = $("[data-server-dot]", node).getAttribute("data-server-dot");
    var server = state.servers[serverLabel];
    var down = section.error || (server && !server.up) || (section.waiting && section.waiting > 1.5);
    var fresh = !section.error && section.data && section.seq >= f.seq - 1 && !(section.waiting > 1.5);
    if (fresh) { node.setAttribute("data-seq", String(section.seq)); }
    node.classList.toggle("outage", !!(section.error || (server && !server.up)));
    node.classList.toggle("waiting", !section.error && section.waiting > 1.5);
    if (down) {
      state.wasDown[role] = Date.now();
      var why = section.error ? section.error :
        section.waiting > 1.5 ? "no answer for " + Math.round(section.waiting) + " s" :
        "server " + serverLabel + " does not answer";
      line.setAttribute("data-state", section.error || (server && !server.up) ? "outage" : "waiting");
      setText(line, "Redis unavailable (" + why.slice(0, 140) + ") → " + OUTAGE[role]);
    } else if (state.wasDown[role] && Date.now() - state.wasDown[role] < 8000) {
      line.setAttribute("data-state", "recovered");
      setText(line, "Redis is back → " + BACK[role]);
    } else {
      line.setAttribute("data-state", "ok");
      setText(line, "");
    }
    $("[data-updated]", node).setAttribute("data-at", section.at || "");
  }

  var OUTAGE = {
    cache: "the cache answers misses and drops writes; pages still render, from the database",
    sessions: "requests that need the session get 503 + Retry-After; nobody is logged out",
    ratelimit: "rate limiting fails open: requests go through, none is refused",
    pubsub: "broadcast() raises (nothing is queued); subscribers reconnect and replay",
    locks: "no lock can be taken: nightly_report refuses to run"
  };
  var BACK = {
    cache: "hits again once values are reloaded",
    sessions: "the same sessions, still signed in",
    ratelimit: "counting again; budgets were not reset",
    pubsub: "subscribers reconnected; missed messages replayed",
    locks: "locks can be taken again"
  };

  // -- the role panels ---------------------------------------------------------
  var RENDER = {
    cache: function (d) {
      var s = d.layers[d.layers.length - 1];  // the Redis layer (a near cache comes first)
      setText(k("cache", "hits"), num(s.hits));
      setText(k("cache", "misses"), num(s.misses));
      setText(k("cache", "ratio"), pct(s.hit_ratio));
      setText(k("cache", "loads"), num(s.loads));
      setText(k("cache", "outages"), num(s.outages));
      fill(k("cache", "layers"), d.layers.map(function (l) {
        return [l.layer, num(l.hits), num(l.misses), pct(l.hit_ratio), num(l.loads)];
      }));
      draw($("[data-chart=cache]"), state.charts.cache || []);
    },

    sessions: function (d) {
      setText(k("sessions", "total"), num(d.total));
      setText(k("sessions", "users"), num(d.users));
      setText(k("sessions", "mine"), state.viewer.authenticated ? num(d.mine.length) : "–");
      var body = k("sessions", "sessions");
      if (!state.viewer.authenticated) {
        fill(body, [["Log in to see your sessions here", "", "", ""]]);
        return;
      }
      fill(body, d.mine.map(function (s) {
        return [s.device, s.ip || "—", s.last_seen ? ago(s.last_seen) : "—", s.current ? "this one" : ""];
      }));
    },

    ratelimit: function (d) {
      var r = d.rates, t = d.totals;
      setText(k("ratelimit", "checks"), (r.allowed + r.limited + r.failed_open + r.failed_closed).toFixed(1));
      setText(k("ratelimit", "allowed"), num(t.allowed));
      setText(k("ratelimit", "refused"), num(t.refused));
      setText(k("ratelimit", "failed"), num(t.failed_open));
      draw($("[data-chart=ratelimit]"), state.charts.ratelimit || []);
      var log = k("ratelimit", "refusals");
      log.replaceChildren.apply(log, d.refusals.slice().reverse().map(function (x) {
        return el("li", {}, [el("small", { text: clock(x.at) + " " }),
          (x.refused ? "429 " : "over (let through) ") + x.path + " — " + x.policies.join(", ") +
          " (" + x.algorithms.join(", ") + "), retry after " + x.retry_after + " s"]);
      }));
    },

    pubsub: function (d) {
      var redis = d.redis, group = null;
      (redis.groups || []).forEach(function (g) { if (g.group === "notifications") { group = g; } });
      setText(k("pubsub", "processes"), group ? num(group.processes) : "0");
      setText(k("pubsub", "consumers"), num(redis.consumer_channels));
      var stream = (redis.replay_streams || []).filter(function (r) { return r.group === "notifications"; })[0];
      setText(k("pubsub", "replay"), stream ? num(stream.entries) : "0");
      setText(k("pubsub", "reconnects"), num(d.process.reconnects || 0));
      setText(k("pubsub", "replayed"), num(d.process.replayed || 0));
      state.replayed = d.process.replayed || 0;
      // After a reconnect, say how many messages replay brought back (this instance's layer).
      if (state.lost && state.replayed > state.lost.replayed) {
        setText(state.lost.li, state.lost.text.replace(/ —$/, ": " + (state.replayed - state.lost.replayed) + " replayed —"));
      }
      setText(k("pubsub", "gaps"), num(d.process.gaps || 0));
      draw($("[data-chart=pubsub]"), state.charts.pubsub || []);
    },

    locks: function (d) {
      var now = Date.now();
      state.locks = d.locks.map(function (l) {
        return Object.assign({ endsAt: l.expires_in === null ? null : now + 1000 * l.expires_in }, l);
      });
      renderLocks();
    }
  };

  function renderJobs(jobs) {
    fill(k("locks", "jobs"), jobs.map(function (j) {
      var status = j.running ? "running" : "exit " + j.exit;
      return ["pid " + j.pid + " at " + clock(j.started), status, j.last_line];
    }));
  }

  function command(cmd) {  // "manage.py nightly_report --duration 20", without the long paths
    var words = cmd.split(" ");
    words[0] = words[0].split("/").pop();
    var text = words.join(" ");
    return text.length > 48 ? text.slice(0, 47) + "…" : text;
  }

  function renderLocks() {
    var body = k("locks", "locks");
    if (!state.locks.length) { fill(body, [["no lock held", "", "", ""]]); return; }
    fill(body, state.locks.map(function (l) {
      var left = l.endsAt === null ? null : Math.max(0, (l.endsAt - Date.now()) / 1000);
      var width = l.ttl && left !== null ? Math.round(60 * left / l.ttl) : 0;
      var lease = el("span", { "data-lease": l.name }, [
        el("span", { class: "bar", style: "width:" + width + "px" }),
        left === null ? "no TTL" : left.toFixed(1) + " s of " + Math.round(l.ttl) + " s"]);
      var holder = l.host !== undefined ? l.host + " pid " + l.pid + (l.cmd ? " · " + command(l.cmd) : "") : "(log in to see)";
      return [el("code", { text: l.name }), String(l.fence), lease, holder];
    }), [0, 1]);
  }

  // -- Redis servers and doctor findings ---------------------------------------
  function renderInstances(f) {
    var box = $("[data-k=instances]");
    var data = f.instances.data || {};
    var doctor = (f.doctor.data || {}).servers || {};
    var cards = Object.keys(data).map(function (label) {
      var s = data[label], d = doctor[label] || {};
      var warn = (d.findings || []).some(function (x) { return x.severity === "error"; });
      var dots = "[data-server-dot='" + label + "']";
      if (s.deployment && s.deployment !== label) {
        // A node of a Redis Cluster / Sentinel service: the role's dot is the worst of its nodes.
        dots += ",[data-server-dot='" + s.deployment + "']";
      }
      $$(dots).forEach(function (dot) {
        var was = dot.getAttribute("data-seen") === String(f.seq) ? dot.className : "dot up";
        var now = !s.up && s.node !== "replica" ? "dot down" : warn || !s.up ? "dot warn" : "dot up";
        var rank = { "dot up": 0, "dot warn": 1, "dot down": 2 };
        dot.className = rank[now] > rank[was] ? now : was;
        dot.setAttribute("data-seen", String(f.seq));
      });
      var card = el("div", { class: "card" + (s.up ? "" : " down"), "data-server": label });
      var what = s.node && s.node !== "server" ? s.node + " of " + s.deployment + " · " : "";
      card.appendChild(el("h3", {}, [label + " ", el("small", { text: what + s.roles.join(", ") })]));
      if (!s.up) {
        card.appendChild(el("p", { class: "state", "data-state": "outage", text: "Not answering: " + s.error }));
      }
      var facts = el("dl", { class: "facts" });
      var add = function (name, value) { facts.appendChild(el("dt", { text: name })); facts.appendChild(el("dd", { text: value })); };
      if (s.up) {
        add("server", s.server + " " + s.version + " · up " + Math.round(s.uptime / 60) + " min");
        add("memory", bytes(s.used_memory) + " of " + (s.maxmemory ? bytes(s.maxmemory) : "no maxmemory") + " · policy " + s.policy);
        var persistence = d.persistence ? (d.persistence.aof ? "AOF" : "no AOF") + " · " + (d.persistence.rdb ? "RDB snapshots" : d.persistence.rdb === false ? "no RDB" : "RDB ?") : (s.aof ? "AOF" : "no AOF");
        add("persistence", persistence);
        add("keys", Object.keys(s.keys).map(function (db) { return db + ": " + num(s.keys[db]); }).join(" · ") || "none");
        add("keys without TTL", d.keys_without_ttl === undefined ? "(doctor pending)" : num(d.keys_without_ttl));
        add("clients · ops/s", num(s.clients) + " · " + s.ops_per_sec);
      }
      var points = state.charts["server:" + label] || [];
      var memory = points.map(function (p) { return [p[0], p[1]]; });
      var ops = points.map(function (p) { return [p[0], p[2]]; });
      var peak = function (series) { return series.reduce(function (m, p) { return Math.max(m, p[1]); }, 0); };
      var charts = el("div", {}, [
        el("small", { text: "memory used (peak " + bytes(peak(memory)) + "), last 5 min" }), svg("memory"),
        el("small", { text: "commands per second (peak " + Math.round(peak(ops)) + ")" }), svg("ops")]);
      draw($("[data-chart=memory]", charts), memory, { min: "auto" });
      draw($("[data-chart=ops]", charts), ops, { classes: ["s1"] });
      card.appendChild(el("div", { class: "split" }, [facts, charts]));
      (d.findings || []).forEach(function (x) {
        var box = el("div", { class: "finding " + x.severity, "data-finding": x.id },
          [el("strong", { text: x.id + " " }), x.message, el("br"), el("em", { text: "Fix: " }), x.fix]);
        var cmds = [x.config_set, x.redis_conf && "redis.conf: " + x.redis_conf].filter(Boolean);
        if (cmds.length) { box.appendChild(el("pre", { text: cmds.join("\n") })); }
        card.appendChild(box);
      });
      if (f.doctor.data && !(d.findings || []).length) {
        card.appendChild(el("p", { class: "finding ok", text: "redisroles doctor: no finding" }));
      }
      return card;
    });
    box.replaceChildren.apply(box, cards);
  }

  // -- failure modes (staff, demo only) -----------------------------------------
  function renderFaults(f) {
    var box = $("[data-k=faults]");
    var paused = f.faults.servers.filter(function (s) { return s.paused_for > 0; });
    if (paused.length) {
      banner("DEMO: Redis " + paused[0].label + " is paused for " + Math.ceil(paused[0].paused_for) +
        " more s (every client waits; each role follows its policy).", "fault");
    } else if ($("#banner").getAttribute("data-kind") === "fault") { banner(""); }
    if (!box) { return; }
    var rows = f.faults.servers.map(function (s) {
      var row = el("div", { class: "fault-row", "data-fault-server": s.label }, [el("strong", { text: s.label }),
        el("span", { text: (s.node && s.node !== "server" ? s.node + " · " : "") + s.roles.join(", ") + (s.running === false ? " · STOPPED" : "") + (s.paused_for > 0 ? " · paused " + Math.ceil(s.paused_for) + " s" : "") })]);
      [5, 15].forEach(function (n) {
        row.appendChild(el("button", { type: "button", "data-fault": "pause", "data-seconds": n, "data-server": s.label, text: "Pause " + n + " s" }));
      });
      if (s.roles.indexOf("pubsub") >= 0) {
        row.appendChild(el("button", { type: "button", "data-fault": "drop", "data-server": s.label,
          title: "CLIENT KILL TYPE pubsub, then 3 broadcasts while the subscribers reconnect", text: "Cut pub/sub connections" }));
      }
      if (s.can_stop) {
        row.appendChild(el("button", { type: "button", "data-fault": s.running ? "stop" : "start", "data-server": s.label, text: s.running ? "Stop" : "Start" }));
      } else {
        row.appendChild(el("small", { text: s.node && s.node !== "server"
          ? "(stop/start: only for a single redis-server the demo started; stop a " + s.node + " with your own tools)"
          : "(stop/start: only for a server the demo started, on its first instance)" }));
      }
      return row;
    });
    // Re-render only when something changed: a button must not vanish under the mouse.
    var html = rows.map(function (r) { return r.outerHTML; }).join("");
    if (box.getAttribute("data-html") !== html) { box.replaceChildren.apply(box, rows); box.setAttribute("data-html", html); }
  }

  document.addEventListener("click", function (e) {
    var button = e.target.closest("[data-fault]");
    if (!button) { return; }
    button.disabled = true;
    post("/dashboard/actions/fault/", {
      action: button.getAttribute("data-fault"), server: button.getAttribute("data-server"),
      seconds: button.getAttribute("data-seconds") || "", token: staffToken
    }).then(function (r) {
      if (r.status !== 200) { banner("Fault not triggered: " + (r.body.error || r.status)); }
      button.disabled = false;
    });
  });

  // -- probes: a real request to each role every 2 s ------------------------------
  function probe(name, url, show) {
    var node = $("[data-probe=" + name + "]"), busy = false;
    function once() {
      if (busy) { return; }
      busy = true;
      var started = performance.now();
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
        var ms = Math.round(performance.now() - started);
        return r.json().catch(function () { return null; }).then(function (body) {
          var out = show(r, body, ms);
          setText(node, "probe " + url + " → " + out[0]);
          node.className = "probe " + (out[1] ? "good" : "bad");
          node.setAttribute("data-status", String(r.status));
        });
      }).catch(function () {
        setText(node, "probe " + url + " → no answer (the app itself is unreachable)");
        node.className = "probe bad";
      }).then(function () { busy = false; });
    }
    once();
    setInterval(once, 2000);
  }

  probe("cache", "/dashboard/probe/cache/", function (r, b, ms) {
    if (!b) { return [r.status + " (no JSON)", false]; }
    if (b.outage) { return [r.status + " in " + ms + " ms: miss, Redis unavailable (answered as a miss; the page still works)", false]; }
    return [r.status + " in " + ms + " ms: " + (b.hit ? "hit (value " + b.age + " s old)" : "miss: loaded and stored"), true];
  });
  probe("session", "/dashboard/probe/session/", function (r, b, ms) {
    if (r.status === 503) {
      return ["503 Service Unavailable, Retry-After " + r.headers.get("Retry-After") +
        " s: the session store is unreachable; you are still signed in (your cookie is kept)", false];
    }
    if (!b) { return [r.status + " (no JSON)", false]; }
    if (!b.user) { return [r.status + ": not signed in", true]; }
    var back = state.wasDown.sessions ? "still " : "";
    return [r.status + " in " + ms + " ms: " + back + "signed in as " + b.user + " (visit " + b.visits + ")", true];
  });
  probe("ratelimit", "/dashboard/probe/ratelimit/", function (r, b, ms) {
    if (!b) { return [r.status + " (no JSON)", false]; }
    if (b.failed) { return [r.status + " in " + ms + " ms: let through, Redis unreachable (fail open)", false]; }
    return [r.status + " in " + ms + " ms: counted, " + b.remaining + " of 600/min left", true];
  });

  // -- buttons -----------------------------------------------------------------
  function result(name, nodes) {
    var box = $("[data-result=" + name + "]");
    box.replaceChildren.apply(box, nodes);
  }
  function action(name, handler) {
    $$("[data-action=" + name + "]").forEach(function (b) {
      b.addEventListener("click", function (e) {
        if (b.type === "submit") { return; }
        e.preventDefault();
        b.disabled = true;
        // A handler resolving to true keeps its button disabled (the 429 countdown).
        Promise.resolve(handler(b)).then(function (keep) { b.disabled = keep === true; });
      });
    });
  }
  // The answer is usable, or the reason it is not is shown in the button's result box.
  function need(r, name, also) {
    if (r.status === 200 || (also && also(r))) { return true; }
    var why = r.body.error || "HTTP " + r.status;
    if (r.status === 503 && !r.body.error) { why = "503: the sessions Redis is down, and this button needs your session"; }
    result(name, [el("p", { class: "state", "data-state": "outage", text: why })]);
    return false;
  }

  action("stampede", function () {
    result("stampede", [el("p", { text: "50 threads miss the same key at once…" })]);
    return post("/dashboard/actions/stampede/").then(function (r) {
      if (!need(r, "stampede")) { return; }
      var d = r.body;
      result("stampede", [el("table", { class: "small" }, [
        el("tr", {}, [el("th", { text: d.callers + " concurrent misses" }), el("th", { text: "loader runs" }), el("th", { text: "time" })]),
        el("tr", { "data-k": "protected" }, [el("td", { text: "get_or_set() / @cached" }), el("td", { text: d.protected.loads }), el("td", { text: d.protected.seconds + " s" })]),
        el("tr", { "data-k": "plain" }, [el("td", { text: "plain get, compute, set" }), el("td", { text: d.plain.loads }), el("td", { text: d.plain.seconds + " s" })])
      ]), el("p", { text: "One caller loads while the others wait for its value (single flight); a plain cache sends every miss to the database." })]);
    });
  });

  action("clear", function () {
    return post("/dashboard/actions/clear/").then(function (r) {
      if (!need(r, "clear")) { return; }
      var d = r.body, rows = [el("tr", {}, [el("th", { text: "role" }), el("th", { text: "keys before" }), el("th", { text: "after" })])];
      Object.keys(d.before).forEach(function (role) {
        rows.push(el("tr", { "data-role": role }, [el("td", { text: role }), el("td", { text: num(d.before[role]) }), el("td", { text: num(d.after[role]) })]));
      });
      result("clear", [el("p", { text: "cache.clear() removed " + d.removed + " key(s), only in the cache's namespace:" }), el("table", { class: "small" }, rows)]);
    });
  });

  action("logout-others", function () {
    return post("/sessions/logout-others/").then(function () {
      result("logout-others", [el("p", { text: "Other devices logged out (their next request is anonymous)." })]);
    });
  });

  action("lock", function () {
    return post("/dashboard/actions/lock/").then(function (r) {
      if (!need(r, "lock", function (x) { return x.body.taken !== undefined; })) { return; }
      result("lock", [el("p", { text: r.body.taken ? "Took demo-page for " + r.body.ttl + " s (fence " + r.body.fence + ")." : r.body.error })]);
    });
  });

  action("job", function () {
    return post("/dashboard/actions/job/", { token: staffToken }).then(function (r) {
      if (!need(r, "lock")) { return; }
      result("lock", [el("p", { text: "Started nightly_report (pid " + r.body.started.pid + "): it takes the lock, or refuses." })]);
    });
  });

  // Rate limiting: send one request to the algorithm's endpoint, read its headers.
  action("try", function (button) {
    var algorithm = k("ratelimit", "algorithm").value;
    return fetch("/dashboard/try/" + algorithm + "/", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        var header = r.headers.get("RateLimit") || "", retry = Number(r.headers.get("Retry-After") || 0);
        var remaining = /;r=(\d+)/.exec(header), reset = /;t=(\d+)/.exec(header);
        var refused = r.status === 429;
        // A 2xx without a RateLimit header was let through uncounted: the limiter could
        // not reach Redis in its 0.25 s and failed open (docs/failures.md).
        var point = { at: Date.now() / 1000, r: remaining ? Number(remaining[1]) : 0, refused: refused, uncounted: !refused && !remaining };
        state.budget.push(point);
        state.tryInfo = { status: r.status, algorithm: algorithm, reset: reset ? Number(reset[1]) : null, at: Date.now() };
        if (refused) { state.retryUntil = Date.now() + 1000 * retry; }
        drawBudget();
        tick();
        return refused;  // disabled until the Retry-After countdown ends (tick)
      });
  });
  function drawBudget() {
    draw($("[data-chart=budget]"), state.budget.map(function (p) { return [p.at, p.r]; }), {
      seconds: 60, max: tryLimit, refs: [{ y: tryLimit }],
      dots: state.budget.map(function (p) { return { t: p.at, v: p.r, cls: p.refused ? "refused" : p.uncounted ? "uncounted" : "allowed" }; })
    });
  }

  action("compare", function () {
    result("compare", [el("p", { text: "Sending the same requests to three limits (10 per 3 s), around a window boundary… (about 6 s)" })]);
    return post("/dashboard/actions/compare/").then(function (r) {
      if (!need(r, "compare")) { return; }
      var d = r.body, algos = ["fixed", "sliding", "gcra"];
      var rows = [el("tr", {}, ["algorithm", "let through within 0.5 s of the boundary", "in all: allowed / refused"].map(function (h) { return el("th", { text: h }); }))];
      algos.forEach(function (a) {
        var s = d.summary[a];
        rows.push(el("tr", { "data-algorithm": a }, [el("td", { text: a }), el("td", { "data-k": "boundary", text: s.around_boundary }),
          el("td", { text: s.allowed + " / " + s.refused })]));
      });
      var chart = svg("compare", 80);
      var counts = { fixed: 0, sliding: 0, gcra: 0 }, points = [];
      d.events.forEach(function (e) { if (e.allowed) { counts[e.algo] += 1; } points.push([e.t, counts.fixed, counts.sliding, counts.gcra]); });
      draw(chart, points, { x0: -0.6, x1: d.period + 0.4, classes: ["s1", "s0", "s2"], refs: [{ x: 0 }, { y: d.limit }] });
      result("compare", [el("table", { class: "small" }, rows), chart,
        el("p", { class: "legend" }, [el("i", { class: "c1" }), "fixed ", el("i", { class: "c0" }), "sliding ", el("i", { class: "c2" }),
          "gcra: requests let through so far; dashed: the window boundary and the limit (" + d.rate + ")"]),
        el("p", { text: "The same arrivals for each: 10 requests just before a fixed window ends, 10 just after, then one every 0.2 s. " +
          "The fixed window starts counting from zero at the boundary and lets all 20 through within half a second. " +
          "The sliding window still weighs the previous window's 10; GCRA allows a burst of 10, then one request every 0.3 s (3 s / 10)." })]);
    });
  });

  // -- pub/sub: the replay route --------------------------------------------------
  var feed = k("pubsub", "feed"), wsStatus = k("pubsub", "ws");
  try {
    state.lastSeq = sessionStorage.getItem("dashboard.seq");
    JSON.parse(sessionStorage.getItem("dashboard.feed") || "[]").forEach(function (item) { addFeed(item, true); });
  } catch (err) { /* storage off: live only */ }

  function addFeed(item, restoring) {
    var li;
    if (item.marker) {
      li = el("li", { class: "marker" + (item.ok ? " ok" : ""), "data-marker": item.marker, text: item.text });
    } else {
      li = el("li", { class: item.replayed ? "replayed" : "", "data-seq": item.seq || "" }, [
        el("small", { text: clock(item.at || Date.now() / 1000) + " " }),
        item.text, el("small", { text: (item.from ? " from " + item.from : "") + (item.replayed ? " (replayed)" : "") })]);
    }
    feed.insertBefore(li, feed.firstChild);
    if (item.marker === "lost") { state.lost = { li: li, replayed: state.replayed, text: item.text }; }
    // Keep the last 60 messages, and the markers among them (a gap must not scroll away).
    var items = $$("li:not(.marker)", feed);
    items.slice(60).forEach(function (old) { feed.removeChild(old); });
    if (!restoring) {
      try {
        var kept = JSON.parse(sessionStorage.getItem("dashboard.feed") || "[]");
        kept.push(item);
        sessionStorage.setItem("dashboard.feed", JSON.stringify(kept.slice(-60)));
      } catch (err) { /* storage off */ }
    }
  }

  function connectSocket() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var since = state.lastSeq;
    var url = scheme + location.host + "/ws/notifications/replay/" + (since ? "?since=" + encodeURIComponent(since) : "");
    var socket = new WebSocket(url), openedAt = 0, replayed = 0;
    socket.onopen = function () {
      openedAt = Date.now() / 1000;
      setText(wsStatus, since ? "live, caught up from seq " + since : "live");
      wsStatus.setAttribute("data-state", "live");
    };
    socket.onmessage = function (e) {
      var data = JSON.parse(e.data);
      if (data.redisroles === "lost") {
        addFeed(data.reason === "capacity" ?
          { marker: "lost", text: "— this tab's queue on the server was full: messages were dropped (capacity) —" } :
          { marker: "lost", text: "— the app lost its Redis connection and reconnected (resubscribed); this group replays what was missed —" });
        return;
      }
      if (data.redisroles === "refused") {  // an ACL user without the group's channel
        addFeed({ marker: "refused", text: "— Redis refused this app's subscription: " + data.reason + " —" });
        return;
      }
      if (data.redisroles === "gap") {
        addFeed({ marker: "gap", text: "— gap: some messages after " + data.since + " are no longer kept (replay holds the last 200); resumed at " + (data.resumed_at || "the newest") + " —" });
        return;
      }
      var m = data.message || {};
      var item = { seq: data.seq, text: m.text !== undefined ? m.text : JSON.stringify(m), from: m.from, at: m.at || Date.now() / 1000 };
      // Sent before this socket opened: it came from the replay stream, not live.
      item.replayed = !!(since && m.at && m.at < openedAt - 0.2);
      if (item.replayed) { replayed += 1; }
      if (data.seq) { state.lastSeq = data.seq; try { sessionStorage.setItem("dashboard.seq", data.seq); } catch (err) { /* off */ } }
      addFeed(item);
    };
    socket.onclose = function (e) {
      if (e.code === 4403) {  // refused (ACL): it will not heal by itself, ask again slowly
        setText(wsStatus, "refused by Redis (its ACL), asking again in 30 s…");
        wsStatus.setAttribute("data-state", "refused");
        setTimeout(connectSocket, 30000);
        return;
      }
      setText(wsStatus, "disconnected, reconnecting with ?since=" + (state.lastSeq || "(none)") + "…");
      wsStatus.setAttribute("data-state", "down");
      setTimeout(connectSocket, 1000);
    };
  }

  $("[data-k=send]", panel("pubsub")).addEventListener("submit", function (e) {
    e.preventDefault();
    var form = e.target;
    post("/dashboard/actions/send/", { text: form.text.value }).then(function (r) {
      if (r.status === 200) { form.reset(); return; }
      addFeed({ marker: "not-sent", text: "— not sent: " + (r.body.error || "HTTP " + r.status) + " (broadcast() raised: the sender knows, nothing is queued) —" });
    });
  });
  action("burst", function () {
    return post("/dashboard/actions/send/", { text: "burst", count: 250 }).then(function (r) {
      if (r.status !== 200) { addFeed({ marker: "not-sent", text: "— burst not sent: " + (r.body.error || "HTTP " + r.status) + " —" }); }
    });
  });

  // -- every 250 ms: ages, lease countdowns, the Retry-After countdown ---------------
  function tick() {
    $$("[data-updated]").forEach(function (node) {
      var at = Number(node.getAttribute("data-at"));
      setText(node, at ? "updated " + ago(at) : "waiting for data…");
    });
    if (state.locks.length) { renderLocks(); }
    var info = state.tryInfo, status = k("ratelimit", "try-status"), button = $("[data-action=try]");
    if (!info) { return; }
    var left = Math.max(0, Math.ceil((state.retryUntil - Date.now()) / 1000));
    var last = state.budget[state.budget.length - 1];
    var reset = info.reset !== null ? " · budget full again at " + new Date(info.at + 1000 * info.reset).toLocaleTimeString("en-GB") + " (t=" + info.reset + ")" : "";
    if (left > 0) {
      status.className = "try-status refused";
      setText(status, "429 Too Many Requests (" + info.algorithm + "): retry in " + left + " s" + reset);
      status.setAttribute("data-retry", String(left));
    } else {
      status.className = "try-status";
      status.setAttribute("data-retry", "0");
      setText(status, (last.refused ? "you may retry now" :
        last.uncounted ? info.status + " OK (" + info.algorithm + "): let through uncounted (the limiter could not reach Redis: fail open)" :
        info.status + " OK (" + info.algorithm + "): " + last.r + " of " + tryLimit + " left") + reset);
      button.disabled = false;
    }
  }
  setInterval(tick, 250);

  connectFeed();
  connectSocket();
})();
