-- Whether Discord grants the bot the privileged MESSAGE_CONTENT intent, as the gateway learned it from the
-- application's flags (or a 4014 close); NULL until a runner connected the bot. Without it Discord blanks
-- the content of guild messages that do not mention the bot, and the API tells the owner which of their
-- deployments' features need it.
ALTER TABLE bot_tokens ADD COLUMN message_content boolean;
