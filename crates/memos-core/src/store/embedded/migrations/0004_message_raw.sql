-- What a message held beyond text: tool calls, a tool_call_id, content parts.
ALTER TABLE messages ADD COLUMN raw TEXT;
