-- Documents pushed by the PDF Extractor API and their chunks, ready for an embedding worker.
-- Constraint names are the ones the service's upserts name in `on_conflict`:
--   documents_job_id_key, document_chunks_document_id_chunk_index_key.
create extension if not exists vector;

create table public.documents (
  id            uuid primary key default gen_random_uuid(),
  job_id        text not null,
  user_id       uuid,
  filename      text,
  upload_device text,
  page_count    int,
  metadata      jsonb,
  status        text,
  created_at    timestamptz not null default now(),
  constraint documents_job_id_key unique (job_id)
);

-- Row permissions filter on user_id; an embedding worker polls for ready documents.
create index documents_user_id_idx on public.documents (user_id);
create index documents_ready_idx on public.documents (created_at)
  where status = 'ready_for_embedding';

create table public.document_chunks (
  id          uuid primary key default gen_random_uuid(),
  document_id uuid not null
              constraint document_chunks_document_id_fkey
              references public.documents (id) on delete cascade,
  chunk_index int not null,
  content     text not null,
  char_count  int,
  start_page  int,
  end_page    int,
  pages       jsonb,
  embedding   vector(1536),
  -- Its index leads with document_id, so it also serves lookups by document and the cascade.
  constraint document_chunks_document_id_chunk_index_key unique (document_id, chunk_index)
);

-- Once embeddings are written, a similarity index (pgvector >= 0.5):
-- create index document_chunks_embedding_idx on public.document_chunks
--   using hnsw (embedding vector_cosine_ops);
