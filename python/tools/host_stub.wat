(module (func (export "call") (param i32 i32 i32 i32) (result i32) i32.const -1))
