namespace Scipio.IO

open System
open System.Threading.Tasks

/// O_DIRECT files from F#: pipe-friendly wrappers over DmaFile, the file last (`file |> DmaFile.readAt 0L 4096`).
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module DmaFile =
    /// Opens an existing file for reading and writing with O_DIRECT.
    let openFile (path: string) : ValueTask<DmaFile> = DmaFile.OpenAsync path

    /// Creates (or truncates) a file for reading and writing with O_DIRECT.
    let create (path: string) : ValueTask<DmaFile> = DmaFile.CreateAsync path

    /// A buffer for this file's I/O: `length` rounded up to its alignment, page aligned.
    let allocate (length: int) (file: DmaFile) : DmaBuffer = file.AllocateBuffer length

    /// Reads `length` bytes at `offset`, any offset and length (fewer at the end of the file); dispose the buffer.
    let readAt (offset: int64) (length: int) (file: DmaFile) : ValueTask<DmaBuffer> = file.ReadAtAsync(offset, length)

    /// Reads into an aligned `buffer` at an aligned `offset`, zero-copy; the bytes read.
    let readInto (buffer: DmaBuffer) (offset: int64) (file: DmaFile) : ValueTask<int> = file.ReadAtAsync(buffer, offset)

    /// Writes all of an aligned `buffer` at an aligned `offset`, zero-copy.
    let writeAt (buffer: DmaBuffer) (offset: int64) (file: DmaFile) : ValueTask = file.WriteAtAsync(buffer, offset)

    /// fdatasync: what was written is on the device.
    let flush (file: DmaFile) : ValueTask = file.FlushAsync()

    /// The file's length in bytes.
    let length (file: DmaFile) : ValueTask<int64> = file.GetLengthAsync()

    /// Closes the file.
    let close (file: DmaFile) : ValueTask = file.DisposeAsync()

/// Page-cache files from F#: pipe-friendly wrappers over BufferedFile, the file last.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module BufferedFile =
    /// Opens an existing file for reading and writing.
    let openFile (path: string) : ValueTask<BufferedFile> = BufferedFile.OpenAsync path

    /// Creates (or truncates) a file for reading and writing.
    let create (path: string) : ValueTask<BufferedFile> = BufferedFile.CreateAsync path

    /// Reads into `buffer` at `offset`; the bytes read (0 at the end of the file).
    let readAt (buffer: Memory<byte>) (offset: int64) (file: BufferedFile) : ValueTask<int> =
        file.ReadAtAsync(buffer, offset)

    /// Writes all of `data` at `offset`.
    let writeAt (data: ReadOnlyMemory<byte>) (offset: int64) (file: BufferedFile) : ValueTask =
        file.WriteAtAsync(data, offset)

    /// fdatasync: what was written is on the device.
    let flush (file: BufferedFile) : ValueTask = file.FlushAsync()

    /// The file's length in bytes.
    let length (file: BufferedFile) : ValueTask<int64> = file.GetLengthAsync()

    /// Closes the file.
    let close (file: BufferedFile) : ValueTask = file.DisposeAsync()
