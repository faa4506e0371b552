drop table if exists public.document_chunks;
drop table if exists public.documents;
