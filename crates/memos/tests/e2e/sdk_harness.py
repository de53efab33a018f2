"""Drives the official MemOS Python SDK (MemOSClient from PyPI MemoryOS, pinned by
scripts/fetch-sdk.sh) against a running memos, method by method, as its docstrings show.

Every answer is parsed by the SDK's own pydantic models (the client does that itself for
the typed calls), and each row checks the effect on the server, not just the status.
Prints one JSON line per row: {"row": name, "ok": bool, "detail": ...}; exits 1 when a row
fails. Environment: MEMOS_SDK_DIR (holds memos/api/{client,product_models}.py),
MEMOS_BASE_URL, MEMOS_API_KEY.
"""

import enum
import base64
import json
import logging
import os
import sys
import time
import types
import typing

# The SDK package's own __init__ imports a heavy tree the client does not use; stub only the
# three tiny modules client.py and product_models.py import, and load those two as they are.
sdk_dir = os.environ["MEMOS_SDK_DIR"]
memos_pkg = types.ModuleType("memos")
memos_pkg.__path__ = [os.path.join(sdk_dir, "memos")]
api_pkg = types.ModuleType("memos.api")
api_pkg.__path__ = [os.path.join(sdk_dir, "memos", "api")]
log_mod = types.ModuleType("memos.log")
log_mod.get_logger = logging.getLogger
types_mod = types.ModuleType("memos.types")
types_mod.MessageList = list[dict[str, typing.Any]]
types_mod.MessagesType = typing.Union[str, list[dict[str, typing.Any]]]
types_mod.PermissionDict = dict[str, typing.Any]


class SearchMode(str, enum.Enum):
    FAST = "fast"
    FINE = "fine"
    MIXTURE = "mixture"


types_mod.SearchMode = SearchMode
for name, mod in [
    ("memos", memos_pkg),
    ("memos.api", api_pkg),
    ("memos.log", log_mod),
    ("memos.types", types_mod),
]:
    sys.modules[name] = mod

from memos.api.client import MemOSClient  # noqa: E402
from memos.api import product_models as pm  # noqa: E402

# The SDK logs every retry at ERROR; a failing row says what failed anyway.
logging.disable(logging.CRITICAL)

client = MemOSClient(api_key=os.environ["MEMOS_API_KEY"], base_url=os.environ["MEMOS_BASE_URL"])
failures = 0


def row(name, fn):
    global failures
    try:
        detail = fn()
        print(json.dumps({"row": name, "ok": True, "detail": detail}, default=str), flush=True)
    except Exception as e:  # noqa: BLE001 - every failure is a row's result
        failures += 1
        print(json.dumps({"row": name, "ok": False, "detail": f"{type(e).__name__}: {e}"}), flush=True)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def wait_task(task_id):
    for _ in range(500):
        st = client.get_task_status(task_id)
        expect(isinstance(st, pm.MemOSGetTaskStatusResponse), "typed answer")
        if st.data.status != "running":
            return st.data.status
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} never finished")


U = "sdk_user"
state = {}


def add_sync():
    r = client.add_message(
        messages=[
            {"role": "user", "content": "I am allergic to peanuts.", "chat_time": "2025-05-03T10:00:00Z"},
            {"role": "assistant", "content": "Noted, no peanuts."},
            {"role": "user", "content": "I live in Lisbon and I like jazz."},
        ],
        user_id=U,
        conversation_id="conv1",
        async_mode=False,
        tags=["sdk"],
        info={"scene": "test"},
    )
    expect(isinstance(r, pm.MemOSAddResponse) and r.success, r)
    expect(r.status == "completed", r.status)
    state["sync_task"] = r.task_id
    return r.status


def add_async():
    r = client.add_message(
        messages=[{"role": "user", "content": "My sister Ana is a pilot."}],
        user_id=U,
        conversation_id="conv2",
    )
    expect(r.status == "running", r.status)
    expect(wait_task(r.task_id) == "completed", "the task completes")
    return r.task_id


def task_status():
    st = client.get_task_status(state["sync_task"])
    expect(st.data.task_id == state["sync_task"] and st.data.status == "completed", st)
    return st.data.status


def search():
    r = client.search_memory(query="what is the user allergic to?", user_id=U, conversation_id="conv1")
    expect(isinstance(r, pm.MemOSSearchResponse), "typed answer")
    texts = [m.model_dump().get("memory_value", "") for m in r.memories]
    expect(any("peanut" in t for t in texts), texts)
    state["peanut_id"] = next(m.model_dump()["id"] for m in r.memories if "peanut" in m.model_dump()["memory_value"])
    return len(texts)


def search_filter_and_relativity():
    r = client.search_memory(
        query="jazz", user_id=U, filter={"tags": {"contains": "sdk"}}, relativity=0.0001,
        include_preference=True, include_tool_memory=True, knowledgebase_ids=[],
    )
    expect(r.data.tool_memory_detail_list == [], r.data.tool_memory_detail_list)
    rel = [m.model_dump()["relativity"] for m in r.memories]
    expect(rel and all(x >= 0.0001 for x in rel), rel)
    top = max(rel)
    high = client.search_memory(query="jazz", user_id=U, relativity=1.0)
    kept = [m.model_dump()["relativity"] for m in high.memories]
    expect(all(x >= 1.0 for x in kept), kept)
    expect(top >= 1.0 or kept == [], "a threshold above every score leaves nothing")
    return rel


def tool_memory():
    # An agent framework's transcript: the tool call becomes a tool trajectory that comes
    # back in its own list, parsed by the SDK's models.
    r = client.add_message(
        messages=[
            {"role": "system", "content": "You are a travel agent."},
            {"role": "user", "content": "What's the weather in Reykjavik?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "w1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Reykjavik\"}"}}]},
            {"role": "tool", "tool_call_id": "w1", "content": "{\"temp\": -2, \"sky\": \"clear\"}"},
            {"role": "assistant", "content": "It is -2°C and clear in Reykjavik."},
        ],
        user_id="sdk_tools", conversation_id="tools", async_mode=False,
    )
    expect(r.success and r.status == "completed", r)
    found = client.search_memory(query="weather Reykjavik", user_id="sdk_tools", include_tool_memory=True)
    tools = [t.model_dump() for t in found.data.tool_memory_detail_list]
    expect(len(tools) == 1 and tools[0]["tool_type"] == "ToolTrajectoryMemory", tools)
    expect("get_weather" in tools[0]["tool_value"] and "-2" in tools[0]["tool_value"], tools)
    expect(tools[0]["tool_used_status"][0]["used_tool"] == "get_weather", tools)
    expect(all(m.model_dump()["memory_type"] != "ToolTrajectoryMemory" for m in found.memories), "apart")
    listed = client.get_memory(user_id="sdk_tools")  # include_tool_memory defaults to True
    expect(len(listed.data.tool_memory_detail_list) == 1, listed.data.tool_memory_detail_list)
    return tools[0]["tool_value"]


def get_memory():
    r = client.get_memory(user_id=U, page=1, size=10)
    expect(isinstance(r, pm.MemOSGetMemoryResponse), "typed answer")
    expect(r.data.total and r.data.total >= 3, r.data.total)
    expect(isinstance(r.data.preference_detail_list, list), "preferences listed")
    return r.data.total


def get_memory_by_id():
    r = client.get_memory_by_id(state["peanut_id"])
    expect(r["code"] == 0 and r["data"]["id"] == state["peanut_id"], r)
    return r["data"]["memory_value"]


def get_message():
    r = client.get_message(user_id=U, conversation_id="conv1")
    expect(isinstance(r, pm.MemOSGetMessagesResponse), "typed answer")
    expect(len(r.messages) == 3, len(r.messages))
    return len(r.messages)


def feedback():
    r = client.add_feedback(user_id=U, conversation_id="conv1", feedback_content="Actually I live in Porto now.")
    expect(isinstance(r, pm.MemOSAddFeedBackResponse) and r.success, r)
    found = client.search_memory(query="where does the user live", user_id=U)
    expect(any("Porto" in m.model_dump()["memory_value"] for m in found.memories), "the correction is searchable")
    return r.status


def update():
    r = client.update_memory(memory_id=state["peanut_id"], content="The user is allergic to peanuts and cashews.")
    expect(r["code"] == 0, r)
    got = client.get_memory_by_id(state["peanut_id"])
    expect("cashews" in got["data"]["memory_value"], got)
    return got["data"]["memory_value"]


def delete_by_ids():
    r = client.delete_memory(memory_ids=[state["peanut_id"]])
    expect(isinstance(r, pm.MemOSDeleteMemoryResponse) and r.success, r)
    got = client._post_json_dict("get/history", {"memory_id": state["peanut_id"]}, "history")
    expect(got["data"]["memory"]["status"] == "deleted", got)
    return "deleted"


def delete_by_user_and_type():
    chat = len(client.get_message(user_id=U, conversation_id="conv1").messages)
    before = client.get_memory(user_id=U, size=50).data.total
    r = client.delete_memory(user_id=U, memory_type="WorkingMemory")
    expect(r.success, r)
    after = client.get_memory(user_id=U, size=50).data.total
    expect(before == after, f"a type the user has none of deletes nothing ({before} -> {after})")
    r = client.delete_memory(user_id=U, memory_type="LongTermMemory")
    left = client.get_memory(user_id=U, size=50).memories
    expect(left and all(m.model_dump()["memory_type"] != "LongTermMemory" for m in left), left)
    expect(len(client.get_message(user_id=U, conversation_id="conv1").messages) == chat, "the chat log stays")
    return len(left)


def delete_by_filter():
    # Two users hold memories tagged "trip"; a filter alone deletes them for both and
    # leaves everything else.
    for user in ("sdk_filter_a", "sdk_filter_b"):
        client.add_message(
            messages=[{"role": "user", "content": "Booked a night train to Vienna."}],
            user_id=user, conversation_id="trip", async_mode=False, tags=["trip"],
        )
        client.add_message(
            messages=[{"role": "user", "content": "I water the plants on Sundays."}],
            user_id=user, conversation_id="home", async_mode=False,
        )
    r = client.delete_memory(filter={"and": [{"tags": {"contains": "trip"}}]})
    expect(isinstance(r, pm.MemOSDeleteMemoryResponse) and r.success, r)
    for user in ("sdk_filter_a", "sdk_filter_b"):
        left = [m.model_dump() for m in client.get_memory(user_id=user, size=50).memories]
        expect(left and all("trip" not in m["tags"] for m in left), left)
        expect(any("plants" in m["memory_value"] for m in left), left)
    return "deleted across users"


def profile_templates():
    # The SDK binds, edits and deletes; the template itself is made with the cloud's
    # add/profile_template call (the SDK has no method for it), through its own helper.
    made = client._post_json_dict("add/profile_template", {"name": "Support user", "metadata": {
        "Basic Info": {"Name": {"value": "", "algorithm_updatable": False},
                       "Occupation": {"value": "", "algorithm_updatable": True}}}}, "add template")
    tpl = made["data"]["profile_template_id"]
    r = client.bind_profile_template(bind_list=[{"user_id": U, "profile_template_id": tpl}])
    expect(r["code"] == 0 and r["data"]["success"], r)
    r = client.edit_profile(profile_template_id=tpl, user_id=U, metadata={
        "Basic Info": {"Name": {"value": "Ana", "algorithm_updatable": False}}})
    expect(r["data"]["profile"]["metadata"]["Basic Info"]["Name"]["value"] == "Ana", r)
    r = client.edit_profile(profile_template_id=tpl, user_id=U, remove_fields=["Occupation"])
    expect("Occupation" not in r["data"]["profile"]["metadata"]["Basic Info"], r)
    found = client.search_memory(query="who is the user", user_id=U)
    listed = [p.model_dump() for p in found.data.profile_detail_list]
    expect(listed and listed[0]["metadata"]["Basic Info"]["Name"]["value"] == "Ana", listed)
    r = client.delete_profile(profile_template_id=tpl, user_id=U)
    expect(r["data"]["deleted"] is True, r)
    after = client.search_memory(query="who is the user", user_id=U)
    expect(not after.data.profile_detail_list, after.data.profile_detail_list)
    return tpl


def chat():
    r = client.chat(user_id=U, conversation_id="conv_chat", query="What do I like?", async_mode=False)
    expect(isinstance(r, pm.MemOSChatResponse) and r.response == "You like jazz and Lisbon.", r)
    log = client.get_message(user_id=U, conversation_id="conv_chat").messages
    expect([m.model_dump()["role"] for m in log] == ["user", "assistant"], log)
    return r.response


def chat_stream():
    started = time.monotonic()
    events = []
    for data in client.chat(user_id=U, conversation_id="conv_chat2", query="And what else?", stream=True):
        events.append((time.monotonic() - started, json.loads(data)))
    texts = [(t, e["data"]) for t, e in events if e["type"] == "text"]
    expect("".join(d for _, d in texts) == "You like jazz and Lisbon.", events)
    expect(events[-1][1]["type"] == "end" and events[-1][1]["data"]["response"] == "You like jazz and Lisbon.", events)
    # Streamed as written: the first token came well before the last (150 ms apart).
    expect(texts[-1][0] - texts[0][0] > 0.4, [round(t, 3) for t, _ in texts])
    return [round(t, 2) for t, _ in texts]


def knowledge_bases():
    fixtures = os.environ["MEMOS_FIXTURES"]
    kb = client.create_knowledgebase(knowledgebase_name="Policies", knowledgebase_description="company rules")
    expect(isinstance(kb, pm.MemOSCreateKnowledgebaseResponse), kb)
    kb_id = kb.knowledgebase_id
    with open(os.path.join(fixtures, "policy.pdf"), "rb") as f:
        pdf = base64.b64encode(f.read()).decode()
    added = client.add_knowledgebase_file_json(kb_id, [{"content": pdf, "name": "policy.pdf"}])
    expect(isinstance(added, pm.MemOSAddKnowledgebaseFileResponse) and added.data[0]["status"] == "COMPLETED", added)
    form = client.add_knowledgebase_file_form(kb_id, [os.path.join(fixtures, "travel.docx")])
    expect(form.data[0]["status"] == "COMPLETED" and form.data[0]["name"] == "travel.docx", form)
    listed = client.get_knowledgebase_file(knowledgebase_id=kb_id, page=1, page_size=10)
    expect(isinstance(listed, pm.MemOSGetKnowledgebaseFileResponse) and listed.data.total == 2, listed)
    by_id = client.get_knowledgebase_file(file_ids=[added.data[0]["id"]])
    expect(by_id.files[0].model_dump()["name"] == "policy.pdf", by_id)
    found = {}
    for q, needle in [("design software limit", "1000 yuan"), ("second class trains", "second class")]:
        r = client.search_memory(query=q, user_id=U, knowledgebase_ids=[kb_id])
        texts = [m.model_dump()["memory_value"] for m in r.memories]
        expect(any(needle in t for t in texts), texts)
        found[q] = next(m.model_dump()["info"]["file_name"] for m in r.memories if needle in m.model_dump()["memory_value"])
    gone = client.delete_knowledgebase_file([added.data[0]["id"]])
    expect(isinstance(gone, pm.MemOSDeleteKnowledgebaseResponse) and gone.success, gone)
    r = client.search_memory(query="design software limit", user_id=U, knowledgebase_ids=[kb_id])
    expect(all("1000 yuan" not in m.model_dump()["memory_value"] for m in r.memories), "chunks gone")
    expect(client.delete_knowledgebase(kb_id).success, "deleted")
    return found


def delete_user():
    r = client.delete_memory(user_id=U)
    expect(r.success, r)
    expect(client.get_memory(user_id=U).data.total == 0, "nothing left")
    expect(client.get_message(user_id=U, conversation_id="conv1").messages == [], "chat log gone")
    return "erased"


def agent_memory():
    r = client.add_message(
        messages=[{"role": "user", "content": "I prefer answering in French."}],
        agent_id="sdk_agent", conversation_id="agent_conv", async_mode=False,
    )
    expect(r.success and r.status == "completed", r)
    found = client.search_memory(query="answering French", agent_id="sdk_agent")
    dumped = [m.model_dump() for m in found.memories]
    expect(dumped and all(m["agent_id"] == "sdk_agent" and m["user_id"] is None for m in dumped), dumped)
    mine = client.search_memory(query="answering French", user_id=U)
    expect(all("French" not in m.model_dump()["memory_value"] for m in mine.memories), "kept apart from users")
    listed = client.get_memory(agent_id="sdk_agent")
    expect(listed.data.total >= 1, listed.data.total)
    gone = client.delete_memory(agent_id="sdk_agent")
    expect(gone.success and client.get_memory(agent_id="sdk_agent").data.total == 0, "erased")
    return len(dumped)


def rerank():
    docs = [
        "User is a backend developer in Hangzhou",
        "User likes playing badminton",
        "User is going on a business trip to Beijing next Wednesday",
    ]
    r = client.rerank(query="What sports does the user play?", documents=docs, top_n=2)
    expect(r["code"] == 0, r)
    results = r["data"]["results"]
    expect(len(results) == 2 and results[0]["index"] == 1, results)
    expect(results[0]["document"]["text"] == docs[1], results)
    return [round(x["relevance_score"], 3) for x in results]


def extract():
    r = client.extract_memory(
        messages=[
            {"role": "user", "content": "I booked a summer trip to Guangzhou. Which chain hotels are there?"},
            {"role": "assistant", "content": "You can consider 7 Days Inn, All Seasons or Hilton."},
            {"role": "user", "content": "I live in Shenzhen and I prefer quiet hotels."},
        ],
        extraction_types=["memory", "preference"],
    )
    expect(r["code"] == 0, r)
    data = r["data"]
    expect(any("Guangzhou" in m["memory_value"] for m in data["memory"]), data)
    expect(any("quiet" in p["preference"] for p in data["preference"]), data)
    return {k: len(v) for k, v in data.items()}


for name, fn in [
    ("add_message sync", add_sync),
    ("add_message async", add_async),
    ("get_task_status", task_status),
    ("search_memory", search),
    ("search_memory filter+relativity+include_tool_memory", search_filter_and_relativity),
    ("add_message with tool calls, search and get with include_tool_memory", tool_memory),
    ("get_memory", get_memory),
    ("get_memory_by_id", get_memory_by_id),
    ("get_message", get_message),
    ("add_feedback", feedback),
    ("update_memory", update),
    ("delete_memory by ids", delete_by_ids),
    ("delete_memory by user + memory_type", delete_by_user_and_type),
    ("delete_memory by filter", delete_by_filter),
    ("agent_id as subject: add, search, get, delete", agent_memory),
    ("rerank", rerank),
    ("extract_memory", extract),
    ("bind_profile_template, edit_profile, delete_profile", profile_templates),
    ("knowledge bases: create, add json + form, get, search, delete", knowledge_bases),
    ("chat", chat),
    ("chat stream=True", chat_stream),
    ("delete_memory by user", delete_user),
]:
    row(name, fn)

sys.exit(1 if failures else 0)
