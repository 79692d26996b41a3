"""An unquantised copy of a GGUF model, for tests that compare llama.cpp with transformers on the
same weights: every tensor de-quantised to float32, every metadata key carried over."""

from __future__ import annotations

from pathlib import Path


def unquantised_copy(source: Path, out: Path) -> Path:
    """Write ``source`` to ``out`` with every tensor as F32; return ``out``.

    The values are those transformers loads from the same GGUF (``gguf_file=``), so llama.cpp
    then multiplies what transformers multiplies; only ``general.file_type`` changes, to F32.
    """
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(source))
    writer = gguf.GGUFWriter(str(out), str(reader.get_field("general.architecture").contents()))
    for field in reader.fields.values():
        # The writer writes the architecture and the GGUF.* header fields itself.
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        value = field.contents()
        if field.name == gguf.Keys.General.FILE_TYPE:
            value = int(gguf.LlamaFileType.ALL_F32)
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, kind, sub_type=sub)
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        writer.add_tensor(tensor.name, np.ascontiguousarray(values, dtype=np.float32))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return out
