"""ctxagent inside LangChain and LlamaIndex.

    from ctxagent.integrations.langchain import CtxagentRetriever, CtxagentCompressor, CtxagentAsk
    from ctxagent.integrations.llamaindex import CtxagentLlamaRetriever, CtxagentNodePostprocessor

Each module imports its framework when imported (`pip install "ctxagent[langchain]"` or
`"ctxagent[llamaindex]"`); this package imports neither.
"""
