"""
Message and address formats, belonging to no stage of the pipeline: the
receive side, the cleanup stage, transport agents, DSNs and the send side
all use them, and they load nothing of any stage.

  - L{exmta.message.address}: RFC 5321 paths and mailboxes;
  - L{exmta.message.header}: the one header parser (the header section, its
    fields, their names and values) and the text this server writes into
    header fields;
  - L{exmta.message.linelimit}: lines made fit for RFC 5321's limit before
    a message is sent.
"""
