"""Hold one conversation with a Python twin over Dash 4.4.1's `_dash-ws-callback`.

Reads {"app": name, "steps": [step, ...]} as JSON on stdin, where a step is
{"send": message, "until": request id or message type, "page": {component id: {prop:
value}}}, and prints [[message, ...], ...]: what the server sent during each step,
batches unpacked, in order. The driver is the same as the Rust one in
platform/tests/it/websocket_differential.rs: send the step's message, answer every
`get_props_request` from the step's page (the props it holds, `{}` for a component it
lacks, as the renderer does), stop at the `callback_response` whose `requestId` is
`until` or at the first message whose `type` is `until`. A connection the server ends
closes the conversation with {"closed": why}: the close code, or the name of the
exception that ended Dash's handler (its receive loop lets them through, so an ASGI
server closes the socket with 1011).
"""

import json
import sys
import warnings

# Starlette's test client still works with httpx; its notice about httpx2 is not ours.
warnings.filterwarnings("ignore", message=".*httpx2")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from ws_apps import APPS  # noqa: E402


def answer_for(request, page):
    held = page.get(request["payload"]["componentId"], {})
    props = {name: held[name] for name in request["payload"]["properties"] if name in held}
    return {
        "type": "get_props_response",
        "rendererId": request["rendererId"],
        "requestId": request["requestId"],
        "payload": props,
    }


def step_done(message, until):
    if message.get("type") == "callback_response":
        return message.get("requestId") == until
    return message.get("type") == until


def converse(socket, steps):
    transcript = []
    for step in steps:
        seen = []
        transcript.append(seen)
        socket.send_json(step["send"])
        done = False
        while not done:
            try:
                frame = json.loads(socket.receive_text())
            except WebSocketDisconnect as closed:
                seen.append({"closed": closed.code})
                return transcript
            except Exception as error:  # noqa: BLE001 - the test client re-raises the server's
                seen.append({"closed": type(error).__name__})
                return transcript
            for message in frame if isinstance(frame, list) else [frame]:
                seen.append(message)
                if message.get("type") == "get_props_request":
                    socket.send_json(answer_for(message, step.get("page", {})))
                done = done or step_done(message, step["until"])
    return transcript


def main():
    case = json.load(sys.stdin)
    app = APPS[case["app"]]()
    client = TestClient(app.server)
    path = "/_dash-ws-callback"
    socket = client.websocket_connect(path, headers={"origin": "http://testserver"})
    transcript = converse(socket.__enter__(), case["steps"])
    try:
        socket.__exit__(None, None, None)
    except Exception:  # noqa: BLE001 - already in the transcript as {"closed": ...}
        pass
    json.dump(transcript, sys.stdout)


if __name__ == "__main__":
    main()
