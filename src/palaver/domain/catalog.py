"""Stock replicas and personas every account can use.

The ids are the ones Tavus's docs and real clients use (reference section 14),
so copy-pasted quickstarts and client defaults work against Palaver unchanged.
Default replicas are set where the docs pair a persona with a replica; the
others need a `replica_id` in the request, as on Tavus.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StockReplica:
    replica_id: str
    replica_name: str


@dataclass(frozen=True, slots=True)
class StockPersona:
    persona_id: str
    persona_name: str
    default_replica_id: str | None
    system_prompt: str
    pipeline_mode: str = "full"


_REPLICAS = {
    "r90bbd427f71": "Anna",
    "rf4e9d9790f0": "Anna (older)",
    "rfe12d8b9597": "Nathan",
    "re8e740a42": "Nathan",
    "r79e1c033f": "Charlie",
    "rf4703150052": "Stock replica",
    "r9d30b0e55ac": "Stock replica",
    "r5dc7c7d0bcb": "Stock replica (Phoenix-4 Pro)",
    "rb17cf590e15": "Stock replica",
    "ra066ab28864": "Stock replica",
    "rc2146c13e81": "Stock replica",
    "r6ae5b6efc9d": "Anna (casual)",
    "r7bc3db0d581": "Sabrina",
    "rf25acd9e3f5": "Patrick",
    "re0eae1fbe11": "Lucy",
    "r1af76e94d00": "Rose",
    "r95fd27b5a37": "Helen",
    "r1a4e22fa0d9": "Benjamin",
    "r90105daccb4": "Isabella",
    "rb11617de314": "Sandra",
    "rb67667672ad": "Gloria (green screen)",
    "r4317e64d25a": "Stock replica",
    "r3fbe3834a3e": "Santa",
    "r665388ec672": "Stock replica",
    "r4067604db72": "Lucy - Home",
    "rc9cff32ceba": "Anna - Casual",
    "rb32069a3012": "Luna",
    "r3f4182ef554": "Lucas - Studio",
    "r5f0577fc829": "Lucas - Studio",
    "rc8992fe8e8e": "Brooke",
    "rbb3ca3630f7": "Charlie",
}

STOCK_REPLICAS: dict[str, StockReplica] = {rid: StockReplica(rid, name) for rid, name in _REPLICAS.items()}


def _persona(pid: str, name: str, replica: str | None = None, mode: str = "full") -> StockPersona:
    prompt = f"You are {name}, a Tavus stock persona. Be helpful, concise and friendly."
    if mode == "echo":
        prompt = ""
    return StockPersona(pid, name, replica, prompt, mode)


STOCK_PERSONAS: dict[str, StockPersona] = {
    p.persona_id: p
    for p in [
        _persona("pcb7a34da5fe", "Tavus SDR", "r90bbd427f71"),
        _persona("pdac61133ac5", "Interviewer"),
        _persona("p1af207b8189", "Sales Coach"),
        _persona("paaee96e4f87", "Customer Support"),
        _persona("pdced222244b", "Sales Coach"),
        _persona("p9a95912", "Demo Persona"),
        _persona("p48fdf065d6b", "Tavus Researcher"),
        _persona("pe13ed370726", "AI Interviewer"),
        _persona("p5d11710002a", "Healthcare Intake"),
        _persona("p7fb0be3", "Corporate Trainer"),
        _persona("pc55154f229a", "History Teacher"),
        _persona("p88964a7", "College Tutor"),
        _persona("pb8bb46b", "Sales Agent"),
        _persona("pd43ffef", "Technical Co-Pilot"),
        _persona("p2fbd605", "Tavus Personal AI"),
        _persona("p3bb4745d4f9", "Santa", "r3fbe3834a3e"),
        _persona("p24293d6", "Celebrity DJ"),
        _persona("pb87e71797da", "LiveKit default PAL", "r4067604db72", mode="echo"),
        _persona("pipecat-stream", "Pipecat echo persona", mode="echo"),
        _persona("pipecat0", "Pipecat echo persona", mode="echo"),
    ]
}

# "If a replica is provided without a persona, the default Tavus persona will be used."
DEFAULT_PERSONA_ID = "pcb7a34da5fe"
