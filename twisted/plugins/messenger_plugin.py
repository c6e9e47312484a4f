from twisted.application.service import ServiceMaker

messenger = ServiceMaker(
    "messenger",
    "messenger.tap",
    "A self-hostable messaging server (pipe-delimited line protocol).",
    "messenger",
)
