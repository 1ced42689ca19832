// Makes protobufjs decode 64-bit fields as plain numbers, as the generated typings promise
// (`--force-number`). Without this, the `long` package that protobufjs pulls in turns every
// uint64 (hlc, sizes, epochs) into a Long object at runtime. Import before the generated code.
import protobuf from 'protobufjs/minimal.js';

protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();
