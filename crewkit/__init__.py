"""crewkit: the engine behind the template (settings, role map, governed flows, run records).

Nothing heavy is imported here: `crewkit --help` must answer fast. CrewAI, llama.cpp and
onnxruntime are imported lazily by the modules that need them.
"""

__version__ = "0.1.0"
