"""TensorRT: platform facts -> engine cache / build -> engine bytes -> runner.

    platform      the tensorrt module, this machine's facts, precisions, JetPack table
    engine_file   the engine file forms (jetseg header, plain plan + sidecar), checked
    cache         the guard (may it run here?) and the engine cache beside the model
    build         ONNX -> engine (``jetseg build``)
    loader        loaders: EngineFromCache, EngineBytes, DeserializedEngine
    tensors       the two I/O API generations and the buffers behind each tensor
    runner        TrtBackend, which only runs an engine; open_tensorrt(path)

Which TensorRT API is used is decided by feature detection (hasattr), never by version
numbers; platform.OPTIONAL_API lists every name probed and the releases that have it.

Variables that hold TensorRT objects are named for their type everywhere in jetseg, so
that tests/test_trt_bindings.py can check each name used on them against NVIDIA's compiled
bindings of every TensorRT generation:

    trt           the tensorrt module
    engine        ICudaEngine
    context       IExecutionContext
    runtime       Runtime
    builder       Builder
    network       INetworkDefinition
    config        IBuilderConfig
    profile       IOptimizationProfile
    timing_cache  ITimingCache
    parser        OnnxParser
    error         ParserError
    tensor        ITensor
    layer         ILayer
"""
